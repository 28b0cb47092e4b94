"""Patch embedding of backbone features (glass.md §4 "_embed").

Rows are ordered batch-major, then row-major (y, x) over the patch grid of the first layer.
Two computations of the same function:

* ``embed_reference``: the reference order (unfold -> bilinear upsampling of every (c, ky, kx) plane -> per-layer
  ``adaptive_avg_pool1d`` -> stack -> ``adaptive_avg_pool1d`` aggregator).
* ``PatchEmbedder``: pools the unfolded channels *before* upsampling. Both are linear maps acting on different
  axes (channels vs. space), so they commute; the upsampling then touches ``pretrain_dim`` planes instead of
  ``C * k * k`` (9216 for WideResNet-50 layer3).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def adaptive_mean(x: Tensor, size: int) -> Tensor:
    """``adaptive_avg_pool1d`` over the last axis: (..., L) -> (..., size), windows [floor(iL/M), ceil((i+1)L/M))."""
    lead = x.shape[:-1]
    out = F.adaptive_avg_pool1d(x.reshape(-1, 1, x.shape[-1]), size)
    return out.reshape(*lead, size)


def _unfold(feature: Tensor, patchsize: int) -> tuple[Tensor, tuple[int, int]]:
    """(B, C, h, w) -> (B, C*k*k, h'*w') in (c, ky, kx) order, and the patch grid (h', w'); stride 1."""
    padding = (patchsize - 1) // 2
    unfolded = F.unfold(feature, kernel_size=patchsize, stride=1, padding=padding)
    h = feature.shape[-2] + 2 * padding - patchsize + 1
    w = feature.shape[-1] + 2 * padding - patchsize + 1
    return unfolded, (h, w)


def embed_reference(features: Sequence[Tensor], pretrain_dim: int, target_dim: int, patchsize: int = 3) -> Tensor:
    """The reference computation. features: per layer (B, C_i, h_i, w_i) -> (B*h_0*w_0, target_dim)."""
    patches, shapes = [], []
    for feature in features:
        unfolded, (h, w) = _unfold(feature, patchsize)
        b, c = feature.shape[:2]
        patches.append(unfolded.reshape(b, c, patchsize, patchsize, h * w).permute(0, 4, 1, 2, 3))
        shapes.append((h, w))
    ref_h, ref_w = shapes[0]
    for i in range(1, len(patches)):
        (h, w), x = shapes[i], patches[i]
        b, _, c, k, _ = x.shape
        x = x.reshape(b, h, w, c, k, k).permute(0, 3, 4, 5, 1, 2).reshape(-1, h, w)
        x = F.interpolate(x.unsqueeze(1), size=(ref_h, ref_w), mode="bilinear", align_corners=False).squeeze(1)
        x = x.reshape(b, c, k, k, ref_h, ref_w).permute(0, 4, 5, 1, 2, 3).reshape(b, ref_h * ref_w, c, k, k)
        patches[i] = x
    rows = [x.reshape(-1, *x.shape[-3:]) for x in patches]
    pooled = torch.stack([adaptive_mean(x.reshape(x.shape[0], -1), pretrain_dim) for x in rows], dim=1)
    return adaptive_mean(pooled.reshape(pooled.shape[0], -1), target_dim)


class PatchEmbedder(torch.nn.Module):
    """No parameters. forward(features: per layer (B, C_i, h_i, w_i)) -> (B*h_0*w_0, target_dim)."""

    def __init__(self, pretrain_dim: int, target_dim: int, patchsize: int = 3) -> None:
        super().__init__()
        if patchsize < 1:
            raise ValueError(f"patchsize must be >= 1, got {patchsize}")
        self.pretrain_dim, self.target_dim, self.patchsize = int(pretrain_dim), int(target_dim), int(patchsize)

    def grid(self, features: Sequence[Tensor]) -> tuple[int, int]:
        """The patch grid (h_0, w_0) the rows are laid out on."""
        h, w = features[0].shape[-2:]
        pad = (self.patchsize - 1) // 2
        return h + 2 * pad - self.patchsize + 1, w + 2 * pad - self.patchsize + 1

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        ref = None
        layers = []
        for feature in features:
            unfolded, (h, w) = _unfold(feature, self.patchsize)  # (B, C*k*k, h*w)
            b = feature.shape[0]
            pooled = adaptive_mean(unfolded.transpose(1, 2), self.pretrain_dim)  # (B, h*w, P)
            if ref is None:
                ref = (h, w)
            elif (h, w) != ref:
                planes = pooled.transpose(1, 2).reshape(b, self.pretrain_dim, h, w)
                planes = F.interpolate(planes, size=ref, mode="bilinear", align_corners=False)
                pooled = planes.flatten(2).transpose(1, 2)
            layers.append(pooled.reshape(-1, self.pretrain_dim))
        stacked = torch.stack(layers, dim=1)  # (N, L, P)
        return adaptive_mean(stacked.reshape(stacked.shape[0], -1), self.target_dim)
