"""Global Anomaly Synthesis (glass.md §5.2 step 3): Gaussian noise, gradient ascent, truncated projection.

``gas_reference`` is the reference order: 21 discriminator forwards on ``cat[true, gaus]`` (2N rows each) and 20
input gradients. ``gas_fast`` computes the same function with less work, for the default discriminator (one
Linear -> BatchNorm1d -> LeakyReLU block):

* ``true`` rows never change inside the loop, so their pre-BN activations ``z_t = true W^T + b`` are computed once
  (and reused, with their graph, in the final forward). Only their per-channel sum and centred sum of squares enter
  the train-mode BN statistics of the joint batch, which still couple both halves exactly.
* ``gaus`` moves by ``0.001 g/|g|`` with ``g = dL/dz W`` (``z = gaus W^T + b``), so its activations move by
  ``0.001 (dL/dz) (W W^T) / |g|`` and ``|g|^2 = rowsum((dL/dz) (W W^T) * dL/dz)``: each ascent step costs one
  (N x H x H) product instead of four (2N x D x H) ones. ``gaus`` itself is materialised (one product) only where
  the projection needs it (every 5 steps) and at the end; the projection is an affine row rescaling, so ``z``
  follows it exactly.
* The returned ``gaus`` carries the same autograd graph as the reference (noise and ascent increments are
  constants; the projections are differentiable), so the training gradients into P and D are the same.

BatchNorm running statistics get the same 21 updates (``num_batches_tracked`` + 21) as the reference.

Both functions take the batch's reductions (``batch``: sums and quantiles over the rows; ``LOCAL``, this process's
rows) and the row count of the BCE means (``n_total``): ``glass/ddp.py`` passes a ``common.data_parallel.Shard`` and
the global count, so that a batch spread over ranks computes the one-process function.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glass.model import LEAKY_SLOPE, Discriminator

ASCENT_STEP = 0.001  # hidden constant: step of the normalised gradient ascent
PROJECT_EVERY = 5  # hidden constant: projection period
MANIFOLD_BAND = (0.5, 1.0)  # hidden constant: |gaus - true| band of the manifold projection
EPS = 1e-10


@dataclass(frozen=True)
class GasConfig:
    step: int = 20
    radius: float = 0.75  # the quantile q for r_t / r_g
    mining: int = 1
    svd: int = 0  # 0 = manifold, 1 = hypersphere


@dataclass
class GasResult:
    gaus: Tensor  # (N, D), attached to ``true`` like the reference
    true_loss: Tensor  # BCE(D(true), 0) from the final joint forward
    gaus_loss: Tensor  # BCE(D(gaus), 1) from the final joint forward
    r_g: Tensor  # quantile of |gaus - c| at the last projection (NaN if none: logging only)


class LocalBatch:
    """The batch is this process's rows: sums and quantiles are local (``Shard`` has the same two methods)."""

    @staticmethod
    def sum(tensor: Tensor) -> Tensor:
        return tensor

    @staticmethod
    def quantile(values: Tensor, q: float) -> Tensor:
        return torch.quantile(values.detach(), q=q)


LOCAL = LocalBatch()


def _bce(scores: Tensor, target: float, n_total: float | None) -> Tensor:
    """BCE(scores, target) averaged over the batch: this process's mean, or its sum over ``n_total`` rows."""
    targets = torch.full_like(scores, target)
    if n_total is None:
        return F.binary_cross_entropy(scores, targets)
    return F.binary_cross_entropy(scores, targets, reduction="sum") / n_total


def _project(gaus: Tensor, true: Tensor, center: Tensor, r_t: Tensor, cfg: GasConfig, batch=LOCAL
             ) -> tuple[Tensor, Tensor, Tensor]:
    """Truncated projection. Returns (projected gaus, r_g, the per-row factor alpha/(|h|+eps), detached)."""
    dist_g = torch.norm(gaus - center, dim=1)
    r_g = batch.quantile(dist_g.detach(), cfg.radius)
    if cfg.svd == 1:
        anchor, h, h_norm = center, gaus - center, dist_g
        low, high = r_t, 2 * r_t
    else:
        anchor = true
        h = gaus - true
        h_norm = torch.norm(h, dim=1)
        low, high = MANIFOLD_BAND
    factor = (torch.clamp(h_norm, low, high) / (h_norm + EPS)).view(-1, 1)
    return anchor + h * factor, r_g, factor.detach()


def gas_reference(disc: Discriminator, true: Tensor, center: Tensor, r_t: Tensor, noise: Tensor,
                  cfg: GasConfig, batch=LOCAL, n_total: float | None = None) -> GasResult:
    """The reference loop. true, center, noise: (N, D); r_t: scalar tensor. Spread over ranks, ``disc`` has
    synchronised BatchNorm (its backward is a collective: every rank takes the gradient at once)."""
    n = true.shape[0]
    gaus = true + noise
    r_g = torch.tensor(float("nan"), device=true.device)
    for step in range(cfg.step + 1):
        scores = disc(torch.cat([true, gaus]))
        true_loss = _bce(scores[:n], 0.0, n_total)
        gaus_loss = _bce(scores[n:], 1.0, n_total)
        if step == cfg.step:
            break
        if cfg.mining == 0:
            r_g = batch.quantile(torch.norm(gaus - center, dim=1), cfg.radius)
            break
        grad = torch.autograd.grad(gaus_loss, [gaus])[0]
        grad_norm = torch.norm(grad, dim=1).view(-1, 1)
        with torch.no_grad():
            gaus.add_(ASCENT_STEP * grad / (grad_norm + EPS))
        if (step + 1) % PROJECT_EVERY == 0:
            gaus, r_g, _ = _project(gaus, true, center, r_t, cfg, batch)
    return GasResult(gaus, true_loss, gaus_loss, r_g)


def _bn_update(norm: nn.BatchNorm1d, mean: Tensor, var_biased: Tensor, count: int) -> None:
    """One train-mode running-statistics update, as ``F.batch_norm`` does it (unbiased variance)."""
    with torch.no_grad():
        if norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)
        if norm.track_running_stats:
            m = norm.momentum
            norm.running_mean.mul_(1 - m).add_(mean, alpha=m)
            norm.running_var.mul_(1 - m).add_(var_biased * (count / (count - 1)), alpha=m)


def supports_fast(disc: Discriminator) -> bool:
    block = disc.single_block()
    return block is not None and block[1].momentum is not None and block[1].training


def gas_fast(disc: Discriminator, true: Tensor, center: Tensor, r_t: Tensor, noise: Tensor,
             cfg: GasConfig, batch=LOCAL, n_total: float | None = None) -> GasResult:
    """Same inputs and result as ``gas_reference`` (up to float rounding); other discriminators than the default
    one-block one (``supports_fast``) go to ``gas_reference``."""
    if not supports_fast(disc):
        return gas_reference(disc, true, center, r_t, noise, cfg, batch, n_total)
    linear, norm = disc.single_block()
    tail = disc.tail[0]
    n = true.shape[0] if n_total is None else int(round(n_total))  # rows of each half of the joint batch
    weight, bias = linear.weight, linear.bias
    z_true = linear(true)  # (N, H), graph kept for the final forward
    gaus = true + noise
    r_g = torch.tensor(float("nan"), device=true.device)
    n_ascent = 0 if cfg.mining == 0 else cfg.step
    if n_ascent:
        with torch.no_grad():
            zt = z_true.detach()
            sum_t = batch.sum(zt.sum(0))
            mean_t = sum_t / n
            css_t = batch.sum(((zt - mean_t) ** 2).sum(0))  # centred sum of squares of the true half
            gram = weight @ weight.T  # (H, H)
            zg = linear(gaus.detach())
            anchor_z = zt if cfg.svd == 0 else linear(center)
            acc = torch.zeros_like(zg)  # sum of scaled dL/dz since the last materialisation of gaus
        params = [p.detach() for p in (norm.weight, norm.bias, tail.weight)]
        ascent_grad = AscentGrad(zg, batch)
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
                gaus, r_g, factor = _project(gaus, true, center, r_t, cfg, batch)
                with torch.no_grad():
                    zg = anchor_z + (zg - anchor_z) * factor
    elif cfg.mining == 0:
        r_g = batch.quantile(torch.norm(gaus - center, dim=1), cfg.radius)
    z = torch.cat([z_true, F.linear(gaus, weight, bias)])
    scores = disc.tail(F.leaky_relu(norm(z), LEAKY_SLOPE))  # spread over ranks: synchronised BatchNorm
    rows = true.shape[0]
    return GasResult(gaus, _bce(scores[:rows], 0.0, n_total), _bce(scores[rows:], 1.0, n_total), r_g)


class AscentGrad:
    """``_ascent_grad`` with the backward written out (BN over the joint batch, LeakyReLU, Linear, sigmoid, BCE)
    into preallocated (N, H) buffers: ~5x faster on CPU than autograd, whose ~30 fresh (N, H) temporaries per
    step are mostly page faults. Same values up to float rounding (tests/test_glass_step.py). The returned
    gradient is a buffer overwritten by the next call."""

    def __init__(self, like: Tensor, batch=LOCAL) -> None:
        self.a, self.b, self.c = (torch.empty_like(like) for _ in range(3))
        self.mask = torch.empty(like.shape, dtype=torch.bool, device=like.device)
        self.batch = batch  # the BatchNorm sums and the backward's column sums go over the whole batch

    @torch.no_grad()
    def __call__(self, zg: Tensor, sum_t: Tensor, mean_t: Tensor, css_t: Tensor, params: list[Tensor], eps: float,
                 n: int) -> tuple[Tensor, Tensor, Tensor]:
        gamma, beta, tail_w = params
        a, b, c, mask = self.a, self.b, self.c, self.mask
        total = 2 * n
        mean = (sum_t + self.batch.sum(zg.sum(0))) / total
        torch.sub(zg, mean, out=a)
        torch.mul(a, a, out=b)
        var = (css_t + n * (mean_t - mean) ** 2 + self.batch.sum(b.sum(0))) / total
        rstd = torch.rsqrt(var + eps)
        a.mul_(rstd)  # x_hat
        torch.addcmul(beta, a, gamma, out=b)  # y
        torch.mul(b, LEAKY_SLOPE, out=c)
        torch.maximum(b, c, out=c)  # leaky_relu(y) (slope < 1)
        score = torch.sigmoid(c @ tail_w[0])  # (N,)
        torch.gt(b, 0, out=mask)
        # mean BCE(score, 1) backward as torch computes it (its 1e-12 clamp included), then the sigmoid's
        slope = score * (1 - score)
        d_logit = (score - 1) / torch.clamp(slope, min=1e-12) / n * slope
        torch.mul(d_logit[:, None], tail_w[0] * gamma, out=b)
        torch.mul(b, LEAKY_SLOPE, out=c)
        torch.where(mask, b, c, out=b)  # dL/dx_hat
        torch.mul(b, a, out=c)
        sum_g, sum_gx = self.batch.sum(torch.stack([b.sum(0), c.sum(0)]))  # one collective over ranks
        # batch-norm backward over the joint batch; only the gaus rows carry loss (the true rows' x_hat do not)
        torch.sub(b, sum_g / total, out=c)
        c.addcmul_(a, sum_gx / total, value=-1)
        c.mul_(rstd)
        return c, mean, var


def _ascent_grad(zg: Tensor, sum_t: Tensor, mean_t: Tensor, css_t: Tensor, params: list[Tensor], eps: float,
                 n: int) -> tuple[Tensor, Tensor, Tensor]:
    """dBCE(D(gaus), 1)/dz on the gaus rows of the joint batch; also the joint batch mean and biased variance."""
    gamma, beta, tail_w = params
    with torch.enable_grad():
        z = zg.detach().requires_grad_(True)
        total = 2 * n
        mean = (sum_t + z.sum(0)) / total
        var = (css_t + n * (mean_t - mean) ** 2 + ((z - mean) ** 2).sum(0)) / total
        y = (z - mean) * torch.rsqrt(var + eps) * gamma + beta
        score = torch.sigmoid(F.linear(F.leaky_relu(y, LEAKY_SLOPE), tail_w))
        loss = F.binary_cross_entropy(score, torch.ones_like(score))
        (grad,) = torch.autograd.grad(loss, [z])
    return grad, mean.detach(), var.detach()
