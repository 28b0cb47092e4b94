"""One training iteration after the backbone (glass.md §5.2 steps 1-8), shared by training, tests and benchmarks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from common.device import avoid_host_sync
from glass.gas import GasConfig, gas_fast, gas_reference
from glass.losses import focal_loss, hard_mine, hard_mine_weights, radius_true
from glass.model import Discriminator, Projection


@dataclass
class StepOutput:
    loss: Tensor  # true_loss + gaus_loss + focal (graph attached)
    r_t: Tensor
    r_g: Tensor
    r_f: Tensor
    p_true: Tensor  # share of true rows scored below the margin (logging; NaN if none)
    p_fake: Tensor  # share of LAS-anomalous rows scored at or above the margin (logging; NaN if none)


def losses(proj: Projection | None, disc: Discriminator, true_emb: Tensor, fake_emb: Tensor, mask_s: Tensor,
           center: Tensor, noise: Tensor, cfg: GasConfig, p: float, margin: float = 0.5,
           fast: bool = True) -> StepOutput:
    """true_emb, fake_emb: (N, D) embeddings of the clean and LAS images; mask_s: (B, h, w) patch labels;
    center: (N, D) (the per-position centre tiled over the batch); noise: (N, D) GAS noise. ``margin``
    (``--dsc_margin``) sets the logged shares p_true / p_fake, as in the reference."""
    true = proj(true_emb) if proj is not None else true_emb
    fake = proj(fake_emb) if proj is not None else fake_emb
    mask = mask_s.reshape(-1, 1).to(true.dtype)
    r_t = radius_true(fake, true, center, mask[:, 0], cfg.radius)
    gas = (gas_fast if fast else gas_reference)(disc, true, center, r_t, noise, cfg)
    anomalous = mask[:, 0] == 1
    r_f = torch.tensor(float("nan"), device=true.device)
    if cfg.svd == 1:
        fake, r_f = _hypersphere_fake(fake, center, anomalous, r_t, cfg.radius)
    fake_scores = disc(fake)
    if avoid_host_sync(fake_scores):  # same loss without boolean indexing (which waits for the GPU)
        focal = focal_loss(fake_scores, mask, weights=hard_mine_weights(fake_scores, mask, p))
    else:
        focal = focal_loss(*hard_mine(fake_scores, mask, p))
    loss = gas.true_loss + gas.gaus_loss + focal
    with torch.no_grad():  # shares as tensors (no host synchronisation); NaN where the set is empty
        normal = (~anomalous).to(fake_scores.dtype)
        anomal = anomalous.to(fake_scores.dtype)
        p_true = ((fake_scores[:, 0] < margin).to(normal.dtype) * normal).sum() / normal.sum()
        p_fake = ((fake_scores[:, 0] >= margin).to(anomal.dtype) * anomal).sum() / anomal.sum()
    return StepOutput(loss, r_t, gas.r_g, r_f, p_true, p_fake)




def _hypersphere_fake(fake: Tensor, center: Tensor, anomalous: Tensor, r_t: Tensor, q: float) -> tuple[Tensor, Tensor]:
    """svd=1: LAS-anomalous rows pushed into the shell [2 r_t, 4 r_t] around the centre; r_f their q-quantile
    radius. On CUDA computed on all rows and selected with ``where`` (no ``bool(any)`` / boolean indexing, which
    wait for the GPU); on the CPU with the reference's indexing. Same values either way."""
    if not avoid_host_sync(fake):
        r_f = torch.tensor(float("nan"), device=fake.device)
        if bool(anomalous.any()):
            h = fake[anomalous] - center[anomalous]
            h_norm = torch.norm(h, dim=1)
            factor = (torch.clamp(h_norm, 2 * r_t, 4 * r_t) / (h_norm + 1e-10)).view(-1, 1)
            fake = fake.clone()
            fake[anomalous] = center[anomalous] + h * factor
            with torch.no_grad():
                r_f = torch.quantile(torch.norm(fake[anomalous] - center[anomalous], dim=1), q=q)
        return fake, r_f
    h = fake - center
    h_norm = torch.norm(h, dim=1)
    factor = (torch.clamp(h_norm, 2 * r_t, 4 * r_t) / (h_norm + 1e-10)).view(-1, 1)
    fake = torch.where(anomalous[:, None], center + h * factor, fake)
    with torch.no_grad():
        dist = torch.where(anomalous, torch.norm(fake - center, dim=1), torch.full_like(h_norm, float("nan")))
        r_f = torch.nanquantile(dist, q=q)
    return fake, r_f
