"""GLASS (ECCV 2024): gradient-ascent feature synthesis + local image synthesis, discriminator on patch features.

Modules: ``config`` (the typed ``GlassConfig`` and GLASS's flags), ``method`` (the ``common.method.Method``
implementation), ``network`` (backbone + embedding + projection + discriminator), ``embed`` (3x3 patch aggregation),
``model`` (projection, discriminator), ``gas`` (global anomaly synthesis), ``losses``, ``step`` (one training
step), ``distribution`` (manifold/hypersphere table and FFT judge), ``inference`` (scores and maps),
``checkpoint`` (reference layout), ``trainer`` (the resumable training loop).
"""
