"""Radii, hard mining and the focal loss (glass.md §5.2 steps 2, 6, 7)."""
from __future__ import annotations

import torch
from torch import Tensor

from common.device import avoid_host_sync

FOCAL_GAMMA = 2.0
FOCAL_SMOOTH = 1e-5


def radius_true(fake: Tensor, true: Tensor, center: Tensor, mask: Tensor, q: float) -> Tensor:
    """r_t: the q-quantile of |x - c| over [fake rows with mask 0; all true rows]; detached scalar.

    fake, true, center: (N, D); mask: (N,) patch labels of the LAS image (1 = synthetic anomaly).
    """
    keep = mask == 0
    with torch.no_grad():
        if avoid_host_sync(fake):  # no boolean indexing (it waits for the GPU): masked rows NaN, nanquantile
            fake_dist = torch.norm(fake - center, dim=1)
            fake_dist = torch.where(keep, fake_dist, torch.full_like(fake_dist, float("nan")))
            return torch.nanquantile(torch.cat([fake_dist, torch.norm(true - center, dim=1)]), q=q)
        dist = torch.cat([torch.norm(fake[keep] - center[keep], dim=1), torch.norm(true - center, dim=1)])
        return torch.quantile(dist, q=q)


def hard_mine(scores: Tensor, mask: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """Keep the rows whose squared error (s - m)^2 is >= its p-quantile. scores, mask: (N, 1) -> (K, 1), (K, 1)."""
    if p <= 0:
        return scores, mask
    dist = (scores - mask) ** 2
    keep = dist >= torch.quantile(dist, q=p)
    return scores[keep].unsqueeze(1), mask[keep].unsqueeze(1)


def hard_mine_weights(scores: Tensor, mask: Tensor, p: float) -> Tensor:
    """``hard_mine`` as (N,) 0/1 weights instead of a selection: no boolean indexing, which waits for the GPU."""
    if p <= 0:
        return torch.ones(scores.shape[0], dtype=scores.dtype, device=scores.device)
    dist = (scores - mask) ** 2
    return (dist >= torch.quantile(dist, q=p)).to(scores.dtype)[:, 0]


def focal_loss(scores: Tensor, target: Tensor, gamma: float = FOCAL_GAMMA, smooth: float = FOCAL_SMOOTH,
               weights: Tensor | None = None) -> Tensor:
    """Binary focal loss on the probabilities [1 - s, s] (alpha 1, clamped one-hot). scores, target: (K, 1).
    ``weights`` (K,) 0/1: the mean over the rows weighted 1 (``hard_mine_weights``)."""
    probs = torch.cat([1 - scores, scores], dim=1)
    one_hot = torch.zeros_like(probs).scatter_(1, target.long(), 1.0)
    one_hot = torch.clamp(one_hot, smooth, 1.0 - smooth)
    pt = (one_hot * probs).sum(1) + smooth
    per_row = -torch.pow(1 - pt, gamma) * pt.log()
    if weights is None:
        return per_row.mean()
    return (per_row * weights).sum() / weights.sum()
