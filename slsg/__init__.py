"""SLSG (Pattern Recognition 2024): self-attentive graph segmentation network with simulated anomalies.

See docs/slsg.md. The network reproduces the released reference code (areylng/SLSG @ 4a1496b) module by module so
that its per-class ``<class>.tch`` state dicts load strictly.
"""
