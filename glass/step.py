"""One training iteration after the backbone (glass.md §5.2 steps 1-8), shared by training, tests and benchmarks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from glass.gas import GasConfig, gas_fast, gas_reference
from glass.losses import focal_loss, hard_mine, radius_true
from glass.model import Discriminator, Projection


@dataclass
class StepOutput:
    loss: Tensor  # true_loss + gaus_loss + focal (graph attached)
    r_t: Tensor
    r_g: Tensor
    r_f: Tensor
    p_true: Tensor  # share of true rows scored below the margin (logging; 0-d, NaN without such rows)
    p_fake: Tensor  # share of LAS-anomalous rows scored at or above the margin (logging; 0-d, NaN without such rows)


def losses(proj: Projection | None, disc: Discriminator, true_emb: Tensor, fake_emb: Tensor, mask_s: Tensor,
           center: Tensor, noise: Tensor, cfg: GasConfig, p: float, margin: float = 0.5,
           fast: bool = True) -> StepOutput:
    """true_emb, fake_emb: (N, D) embeddings of the clean and LAS images; mask_s: (B, h, w) patch labels;
    center: (N, D) (the per-position centre tiled over the batch); noise: (N, D) GAS noise."""
    true = proj(true_emb) if proj is not None else true_emb
    fake = proj(fake_emb) if proj is not None else fake_emb
    mask = mask_s.reshape(-1, 1).to(true.dtype)
    r_t = radius_true(fake, true, center, mask[:, 0], cfg.radius)
    gas = (gas_fast if fast else gas_reference)(disc, true, center, r_t, noise, cfg)
    anomalous = mask[:, 0] == 1
    r_f = torch.tensor(float("nan"), device=true.device)
    if cfg.svd == 1 and bool(anomalous.any()):
        h = fake[anomalous] - center[anomalous]
        h_norm = torch.norm(h, dim=1)
        factor = (torch.clamp(h_norm, 2 * r_t, 4 * r_t) / (h_norm + 1e-10)).view(-1, 1)
        fake = fake.clone()
        fake[anomalous] = center[anomalous] + h * factor
        with torch.no_grad():
            r_f = torch.quantile(torch.norm(fake[anomalous] - center[anomalous], dim=1), q=cfg.radius)
    fake_scores = disc(fake)
    mined_scores, mined_mask = hard_mine(fake_scores, mask, p)
    loss = gas.true_loss + gas.gaus_loss + focal_loss(mined_scores, mined_mask)
    with torch.no_grad():
        # masked sums instead of boolean indexing: no host synchronisation; 0 / 0 gives NaN for an empty group
        scores = fake_scores.detach().reshape(-1)
        p_true = ((scores < margin) & ~anomalous).sum() / (~anomalous).sum()
        p_fake = ((scores >= margin) & anomalous).sum() / anomalous.sum()
    return StepOutput(loss, r_t, gas.r_g, r_f, p_true, p_fake)


