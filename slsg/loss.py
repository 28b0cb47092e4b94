"""SLSG loss: ``0.4 * focal(p, T) + 0.6 * L1(p1, T) + 0.3 * L1(p_aux1, T)`` on softmax probabilities."""
from __future__ import annotations

import torch

FOCAL_WEIGHT, L1_WEIGHT, AUX_WEIGHT = 0.4, 0.6, 0.3
GAMMA = 4.0
SMOOTH = 1e-5


def focal_loss(prob: torch.Tensor, target: torch.Tensor, gamma: float = GAMMA, smooth: float = SMOOTH) -> torch.Tensor:
    """Loss_ToolBox focal loss on probabilities (alpha = 1).

    prob: (B,2,H,W) softmax output; target: (B,H,W) or (B,1,H,W) with values {0,1}.
    One-hot clamped to [smooth, 1-smooth]; ``pt = sum(onehot * prob) + smooth``; mean of ``-(1-pt)^gamma log pt``.
    """
    target = target.reshape(prob.shape[0], *prob.shape[2:]).long()
    onehot = torch.nn.functional.one_hot(target, prob.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    onehot = onehot.clamp(smooth / (prob.shape[1] - 1), 1.0 - smooth)
    pt = (onehot * prob).sum(1) + smooth
    return (-torch.pow(1.0 - pt, gamma) * pt.log()).mean()


def slsg_loss(seg: torch.Tensor, aux: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """seg, aux: (B,2,H,W) logits (seg already includes aux); target: (B,1,H,W) or (B,H,W) binary -> scalar."""
    target = target.reshape(seg.shape[0], *seg.shape[2:]).to(seg.dtype)
    prob = torch.softmax(seg, dim=1)
    prob_aux = torch.softmax(aux, dim=1)
    return (FOCAL_WEIGHT * focal_loss(prob, target)
            + L1_WEIGHT * (prob[:, 1] - target).abs().mean()
            + AUX_WEIGHT * (prob_aux[:, 1] - target).abs().mean())
