"""The GLASS step with its batch spread over the ranks of a ``--ddp 1`` run (docs/scale-out.md, "Data parallelism").

Each rank holds a contiguous share of every global batch of ``--batch_size`` images. The loss it backpropagates is
``world x`` its share of the global loss, so that DistributedDataParallel's gradient average is the gradient of
the one-batch loss. Every batch statistic is that of the whole global batch:

* r_t and the hard-mining threshold: ``torch.quantile`` over every rank's values (all_gather);
* the BCE means of GAS and the hard-mined focal mean: local sums over the global counts (all_reduce);
* the discriminator's BatchNorm: ``SyncBatchNorm1d`` (statistics of every rank's rows, gradients through them);
* the GAS gradient ascent: ``glass.gas.gas_fast`` / ``gas_reference`` themselves, given the shard as the batch's
  reductions (BatchNorm and backward sums all-reduced, quantiles gathered) and the global row count: the gradient
  of the global BCE mean through the synchronised BatchNorm.

The logged loss, r_t and r_g are global; r_f, p_true and p_fake (logging only) are this rank's.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from common.data_parallel import Shard
from glass.gas import GasConfig, gas_fast, gas_reference
from glass.losses import FOCAL_GAMMA, FOCAL_SMOOTH
from glass.step import StepOutput, _hypersphere_fake


def losses_shared(proj, disc, true_emb: Tensor, fake_emb: Tensor, mask_s: Tensor, center: Tensor, noise: Tensor,
                  cfg: GasConfig, p: float, margin: float, shard: Shard,
                  fast: bool = True) -> tuple[StepOutput, Tensor]:
    """``glass.step.losses`` for this rank's share of a global batch. Returns the step output (its ``loss`` is the
    global loss, detached, for logging) and the tensor to backpropagate (world x this rank's part of it)."""
    true = proj(true_emb) if proj is not None else true_emb
    fake = proj(fake_emb) if proj is not None else fake_emb
    mask = mask_s.reshape(-1, 1).to(true.dtype)
    anomalous = mask[:, 0] == 1
    n_global = float(shard.sum(torch.tensor(float(true.shape[0]), device=true.device)))
    with torch.no_grad():
        keep = ~anomalous
        dist = torch.cat([torch.norm(fake[keep] - center[keep], dim=1), torch.norm(true - center, dim=1)])
        r_t = shard.quantile(dist, cfg.radius)
    gas = (gas_fast if fast else gas_reference)(disc, true, center, r_t, noise, cfg, shard, n_global)
    r_f = torch.tensor(float("nan"), device=true.device)
    if cfg.svd == 1:
        fake, r_f = _hypersphere_fake(fake, center, anomalous, r_t, cfg.radius)
    fake_scores = disc(fake)
    probs = torch.cat([1 - fake_scores, fake_scores], dim=1)
    one_hot = torch.clamp(torch.zeros_like(probs).scatter_(1, mask.long(), 1.0), FOCAL_SMOOTH, 1.0 - FOCAL_SMOOTH)
    pt = (one_hot * probs).sum(1) + FOCAL_SMOOTH
    per_row = -torch.pow(1 - pt, FOCAL_GAMMA) * pt.log()
    with torch.no_grad():
        if p > 0:
            err = ((fake_scores - mask) ** 2)[:, 0]
            weights = (err >= shard.quantile(err, p)).to(per_row.dtype)
        else:
            weights = torch.ones_like(per_row)
        kept = shard.sum(weights.sum())
    focal = (per_row * weights).sum() / kept
    part = gas.true_loss + gas.gaus_loss + focal  # this rank's part of the global loss
    with torch.no_grad():
        normal, anomal = (~anomalous).to(fake_scores.dtype), anomalous.to(fake_scores.dtype)
        p_true = ((fake_scores[:, 0] < margin).to(normal.dtype) * normal).sum() / normal.sum()
        p_fake = ((fake_scores[:, 0] >= margin).to(anomal.dtype) * anomal).sum() / anomal.sum()
        loss = shard.sum(part.detach())
    return StepOutput(loss, r_t, gas.r_g, r_f, p_true, p_fake), part * shard.world


class Heads(nn.Module):
    """The trainable heads (projection and discriminator) as one module whose forward is the whole step, so that
    DistributedDataParallel sees one forward and one backward per iteration."""

    def __init__(self, projection: nn.Module | None, discriminator: nn.Module, shard: Shard, cfg: GasConfig,
                 p: float, margin: float, fast: bool = True):
        super().__init__()
        self.projection, self.discriminator, self.shard = projection, discriminator, shard
        self.cfg, self.p, self.margin, self.fast = cfg, p, margin, fast

    def forward(self, true_emb, fake_emb, mask_s, center, noise):
        out, backward = losses_shared(self.projection, self.discriminator, true_emb, fake_emb, mask_s, center,
                                      noise, self.cfg, self.p, self.margin, self.shard, self.fast)
        return backward, out.loss, out.r_t, out.r_g, out.r_f, out.p_true, out.p_fake


def wrap(projection: nn.Module | None, discriminator: nn.Module, shard: Shard, device: torch.device, cfg: GasConfig,
         p: float, margin: float, fast: bool = True):
    """The heads with synchronised BatchNorm, in DistributedDataParallel (which broadcasts rank 0's weights)."""
    from common.data_parallel import SyncBatchNorm1d
    from torch.nn.parallel import DistributedDataParallel

    SyncBatchNorm1d.convert(discriminator, shard)
    heads = Heads(projection, discriminator, shard, cfg, p, margin, fast)
    return DistributedDataParallel(heads, device_ids=[device.index] if device.type == "cuda" else None)


def step(ddp_heads, true_emb, fake_emb, mask_s, center, noise) -> tuple[StepOutput, Tensor]:
    backward, loss, r_t, r_g, r_f, p_true, p_fake = ddp_heads(true_emb, fake_emb, mask_s, center, noise)
    return StepOutput(loss, r_t, r_g, r_f, p_true, p_fake), backward
