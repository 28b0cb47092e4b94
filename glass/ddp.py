"""The GLASS step with its batch spread over the ranks of a ``--ddp 1`` run (docs/scale-out.md, "Data parallelism").

Each rank holds a contiguous share of every global batch of ``--batch_size`` images. The loss it backpropagates is
``world x`` its share of the global loss, so that DistributedDataParallel's gradient average is the gradient of
the one-batch loss. Every batch statistic is that of the whole global batch:

* r_t and the hard-mining threshold: ``torch.quantile`` over every rank's values (all_gather);
* the BCE means of GAS and the hard-mined focal mean: local sums over the global counts (all_reduce);
* the discriminator's BatchNorm: ``SyncBatchNorm1d`` (statistics of every rank's rows, gradients through them);
* the GAS gradient ascent: the gradient of the global BCE mean (through the synchronised BatchNorm), either as
  ``glass.gas.gas_fast`` computes it (``--gas_impl fast``, the default one-block discriminator; its BatchNorm sums
  all-reduced) or in the reference order (``--gas_impl reference``).

The logged loss, r_t and r_g are global; r_f, p_true and p_fake (logging only) are this rank's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.data_parallel import Shard
from glass.gas import (ASCENT_STEP, EPS, PROJECT_EVERY, AscentGrad, GasConfig, GasResult, _bn_update, _project,
                       supports_fast)
from glass.model import LEAKY_SLOPE
from glass.losses import FOCAL_GAMMA, FOCAL_SMOOTH
from glass.step import StepOutput, _hypersphere_fake


def _bce_sum(scores: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy(scores, torch.full_like(scores, target), reduction="sum")


def gas_shared(disc: nn.Module, true: Tensor, center: Tensor, r_t: Tensor, noise: Tensor, cfg: GasConfig,
               shard: Shard, n_global: float) -> GasResult:
    """``gas_reference`` with the BCE means over the global batch (``disc`` has synchronised BatchNorm)."""
    n = true.shape[0]
    gaus = true + noise
    r_g = torch.tensor(float("nan"), device=true.device)
    for step in range(cfg.step + 1):
        scores = disc(torch.cat([true, gaus]))
        true_loss = _bce_sum(scores[:n], 0.0) / n_global
        gaus_loss = _bce_sum(scores[n:], 1.0) / n_global
        if step == cfg.step:
            break
        if cfg.mining == 0:
            r_g = shard.quantile(torch.norm(gaus - center, dim=1), cfg.radius)
            break
        # every rank takes the gradient at once: the synchronised BatchNorm's backward is a collective
        grad = torch.autograd.grad(gaus_loss, [gaus])[0]
        grad_norm = torch.norm(grad, dim=1).view(-1, 1)
        with torch.no_grad():
            gaus.add_(ASCENT_STEP * grad / (grad_norm + EPS))
        if (step + 1) % PROJECT_EVERY == 0:
            with torch.no_grad():  # logged: the quantile over the global batch, as one process logs it
                r_g = shard.quantile(torch.norm(gaus - center, dim=1), cfg.radius)
            gaus, _, _ = _project(gaus, true, center, r_t, cfg)
    return GasResult(gaus, true_loss, gaus_loss, r_g)


class _SharedAscentGrad(AscentGrad):
    """``AscentGrad`` over the global batch: the BatchNorm sums and the backward's column sums are all-reduced,
    ``n`` is the global row count."""

    def __init__(self, like: Tensor, shard: Shard) -> None:
        super().__init__(like)
        self.shard = shard

    @torch.no_grad()
    def __call__(self, zg, sum_t, mean_t, css_t, params, eps, n):
        gamma, beta, tail_w = params
        a, b, c, mask, shard = self.a, self.b, self.c, self.mask, self.shard
        total = 2 * n
        mean = (sum_t + shard.sum(zg.sum(0))) / total
        torch.sub(zg, mean, out=a)
        torch.mul(a, a, out=b)
        var = (css_t + n * (mean_t - mean) ** 2 + shard.sum(b.sum(0))) / total
        rstd = torch.rsqrt(var + eps)
        a.mul_(rstd)
        torch.addcmul(beta, a, gamma, out=b)
        torch.mul(b, LEAKY_SLOPE, out=c)
        torch.maximum(b, c, out=c)
        score = torch.sigmoid(c @ tail_w[0])
        torch.gt(b, 0, out=mask)
        slope = score * (1 - score)
        d_logit = (score - 1) / torch.clamp(slope, min=1e-12) / n * slope
        torch.mul(d_logit[:, None], tail_w[0] * gamma, out=b)
        torch.mul(b, LEAKY_SLOPE, out=c)
        torch.where(mask, b, c, out=b)
        torch.mul(b, a, out=c)
        sums = shard.sum(torch.stack([b.sum(0), c.sum(0)]))
        sum_g, sum_gx = sums[0], sums[1]
        torch.sub(b, sum_g / total, out=c)
        c.addcmul_(a, sum_gx / total, value=-1)
        c.mul_(rstd)
        return c, mean, var


def gas_fast_shared(disc: nn.Module, true: Tensor, center: Tensor, r_t: Tensor, noise: Tensor, cfg: GasConfig,
                    shard: Shard, n_global: float) -> GasResult:
    """``glass.gas.gas_fast`` over the global batch (``disc``: the default one-block discriminator with
    synchronised BatchNorm); falls back to ``gas_shared`` for other discriminators."""
    if not supports_fast(disc):
        return gas_shared(disc, true, center, r_t, noise, cfg, shard, n_global)
    linear, norm = disc.single_block()
    n = int(round(n_global))
    weight, bias = linear.weight, linear.bias
    z_true = linear(true)
    gaus = true + noise
    r_g = torch.tensor(float("nan"), device=true.device)
    n_ascent = 0 if cfg.mining == 0 else cfg.step
    if n_ascent:
        with torch.no_grad():
            zt = z_true.detach()
            sum_t = shard.sum(zt.sum(0))
            mean_t = sum_t / n
            css_t = shard.sum(((zt - mean_t) ** 2).sum(0))
            gram = weight @ weight.T
            zg = linear(gaus.detach())
            anchor_z = zt if cfg.svd == 0 else linear(center)
            acc = torch.zeros_like(zg)
        params = [p.detach() for p in (norm.weight, norm.bias, disc.tail[0].weight)]
        ascent_grad = _SharedAscentGrad(zg, shard)
        moved, product = torch.empty_like(zg), torch.empty_like(zg)
        for step in range(n_ascent):
            grad_z, mean, var = ascent_grad(zg, sum_t, mean_t, css_t, params, norm.eps, n)
            _bn_update(norm, mean, var, 2 * n)
            with torch.no_grad():
                torch.matmul(grad_z, gram, out=moved)
                torch.mul(moved, grad_z, out=product)
                grad_norm = torch.sqrt(torch.clamp(product.sum(1, keepdim=True), min=0))
                scale = ASCENT_STEP / (grad_norm + EPS)
                zg.addcmul_(moved, scale)
                acc.addcmul_(grad_z, scale)
            if (step + 1) % PROJECT_EVERY == 0 or step == n_ascent - 1:
                with torch.no_grad():
                    gaus.add_(acc @ weight)
                    acc.zero_()
            if (step + 1) % PROJECT_EVERY == 0:
                with torch.no_grad():
                    r_g = shard.quantile(torch.norm(gaus - center, dim=1), cfg.radius)
                gaus, _, factor = _project(gaus, true, center, r_t, cfg)
                with torch.no_grad():
                    zg = anchor_z + (zg - anchor_z) * factor
    elif cfg.mining == 0:
        r_g = shard.quantile(torch.norm(gaus - center, dim=1), cfg.radius)
    z = torch.cat([z_true, F.linear(gaus, weight, bias)])
    scores = disc.tail(F.leaky_relu(norm(z), LEAKY_SLOPE))  # synchronised BatchNorm: global statistics
    k = true.shape[0]
    return GasResult(gaus, _bce_sum(scores[:k], 0.0) / n_global, _bce_sum(scores[k:], 1.0) / n_global, r_g)


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
    gas = (gas_fast_shared if fast else gas_shared)(disc, true, center, r_t, noise, cfg, shard, n_global)
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
