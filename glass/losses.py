"""Radii, hard mining and the focal loss (glass.md §5.2 steps 2, 6, 7)."""
from __future__ import annotations

import torch
from torch import Tensor

FOCAL_GAMMA = 2.0
FOCAL_SMOOTH = 1e-5


def radius_true(fake: Tensor, true: Tensor, center: Tensor, mask: Tensor, q: float) -> Tensor:
    """r_t: the q-quantile of |x - c| over [fake rows with mask 0; all true rows]; detached scalar.

    fake, true, center: (N, D); mask: (N,) patch labels of the LAS image (1 = synthetic anomaly).
    """
    keep = mask == 0
    with torch.no_grad():
        dist = torch.cat([torch.norm(fake[keep] - center[keep], dim=1), torch.norm(true - center, dim=1)])
        return torch.quantile(dist, q=q)


def hard_mine(scores: Tensor, mask: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """Keep the rows whose squared error (s - m)^2 is >= its p-quantile. scores, mask: (N, 1) -> (K, 1), (K, 1)."""
    if p <= 0:
        return scores, mask
    dist = (scores - mask) ** 2
    keep = dist >= torch.quantile(dist, q=p)
    return scores[keep].unsqueeze(1), mask[keep].unsqueeze(1)


def focal_loss(scores: Tensor, target: Tensor, gamma: float = FOCAL_GAMMA, smooth: float = FOCAL_SMOOTH) -> Tensor:
    """Binary focal loss on the probabilities [1 - s, s] (alpha 1, clamped one-hot). scores, target: (K, 1)."""
    probs = torch.cat([1 - scores, scores], dim=1)
    one_hot = torch.zeros_like(probs).scatter_(1, target.long(), 1.0)
    one_hot = torch.clamp(one_hot, smooth, 1.0 - smooth)
    pt = (one_hot * probs).sum(1) + smooth
    return (-torch.pow(1 - pt, gamma) * pt.log()).mean()
