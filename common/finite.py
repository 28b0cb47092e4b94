"""Divergence check: are a model's weights (and floating buffers) still finite numbers?"""
from __future__ import annotations

import torch
from torch import nn


def weights_finite(*modules: nn.Module | None) -> bool:
    """True when every floating parameter and buffer of ``modules`` is finite (one host sync for all)."""
    tensors = [t for m in modules if m is not None for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
