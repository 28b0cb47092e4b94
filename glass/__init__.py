"""GLASS (ECCV 2024): gradient-ascent feature synthesis + local image synthesis, discriminator on patch features.

Modules: ``embed`` (3x3 patch aggregation), ``model`` (projection, discriminator), ``gas`` (global anomaly
synthesis), ``losses``, ``centre``, ``inference`` (scores and maps), ``distribution`` (manifold/hypersphere table and
FFT judge), ``checkpoint``, ``trainer``, ``method`` (the ``common.method.Method`` implementation and CLI flags).
"""
