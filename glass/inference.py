"""Patch scores -> image scores and anomaly maps (glass.md §6).

Image score = max of the raw patch scores; map = bilinear upsampling (align_corners=False) to the input size, then
a Gaussian filter sigma 4 equal to ``scipy.ndimage.gaussian_filter`` (truncate 4.0 -> radius 16, mode ``reflect`` =
half-sample symmetric borders), computed with torch on the model's device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MAP_SIGMA = 4.0
TRUNCATE = 4.0


def gaussian_kernel(sigma: float, truncate: float = TRUNCATE) -> Tensor:
    """scipy's 1-D Gaussian weights (float64), radius int(truncate * sigma + 0.5)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _reflect_index(n: int, radius: int, device: torch.device) -> Tensor:
    """Indices of a half-sample symmetric extension (scipy 'reflect', numpy 'symmetric') of length n + 2r."""
    idx = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def gaussian_blur(maps: Tensor, sigma: float = MAP_SIGMA) -> Tensor:
    """(B, H, W) float -> (B, H, W) float32, separable, computed in float64 for scipy-level agreement."""
    if sigma <= 0:
        return maps.float()
    kernel = gaussian_kernel(sigma).to(maps.device)
    radius = (kernel.numel() - 1) // 2
    x = maps.to(torch.float64)
    b, h, w = x.shape
    x = x[:, :, _reflect_index(w, radius, maps.device)]
    x = F.conv1d(x.reshape(b * h, 1, -1), kernel.view(1, 1, -1)).reshape(b, h, w)
    x = x.transpose(1, 2)[:, :, _reflect_index(h, radius, maps.device)]
    x = F.conv1d(x.reshape(b * w, 1, -1), kernel.view(1, 1, -1)).reshape(b, w, h).transpose(1, 2)
    return x.to(torch.float32).contiguous()


def scores_and_maps(patch_scores: Tensor, batch: int, grid: tuple[int, int], out_size: tuple[int, int],
                    sigma: float = MAP_SIGMA) -> tuple[Tensor, Tensor]:
    """patch_scores: (B*h*w,) or (B*h*w, 1) -> image scores (B,), maps (B, H, W) float32."""
    scores = patch_scores.reshape(batch, *grid)
    image = scores.flatten(1).max(dim=1).values
    maps = F.interpolate(scores.unsqueeze(1), size=tuple(out_size), mode="bilinear", align_corners=False)[:, 0]
    return image, gaussian_blur(maps, sigma)

