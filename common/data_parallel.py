"""Data parallelism for one model (``--ddp 1`` under torchrun): this rank's place in it and the few collectives
the GLASS step needs so that its maths stays that of one batch spread over the ranks.

``active(shard)`` makes a ``Shard`` the current one for the code that trains (``current()``); outside it, and in
every run without ``--ddp 1``, ``current()`` is None and nothing here is used. The step's collectives run in their
own process group (``Shard.group``), so they never interleave with DistributedDataParallel's gradient all-reduce
on the default group.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

_CURRENT: "Shard | None" = None


@dataclass
class Shard:
    """Rank ``rank`` of ``world`` ranks training one model together; ``group`` carries the step's collectives."""

    rank: int
    world: int
    group: object = None  # a torch.distributed ProcessGroup (None: the default group)

    @property
    def writes(self) -> bool:
        """Only rank 0 writes checkpoints, evaluates and writes results."""
        return self.rank == 0

    def split(self, indices: list[int]) -> tuple[int, list[int]]:
        """This rank's contiguous share of one global batch (sizes differ by at most one) and where it starts."""
        base, extra = divmod(len(indices), self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, list(indices[start:start + base + (1 if self.rank < extra else 0)])

    def sum(self, tensor: Tensor) -> Tensor:
        """The sum over the ranks (no gradient)."""
        import torch.distributed as dist

        out = tensor.detach().clone()
        dist.all_reduce(out, group=self.group)
        return out

    def sum_grad(self, tensor: Tensor) -> Tensor:
        """The sum over the ranks, differentiable (its backward sums the gradients over the ranks)."""
        return _SumOverRanks.apply(tensor, self.group)

    def gather(self, values: Tensor) -> Tensor:
        """Every rank's 1-D ``values`` concatenated in rank order (lengths may differ)."""
        import torch.distributed as dist

        values = values.detach().reshape(-1)
        size = torch.tensor([values.numel()], device=values.device, dtype=torch.int64)
        sizes = [torch.zeros_like(size) for _ in range(self.world)]
        dist.all_gather(sizes, size, group=self.group)
        longest = int(max(int(s) for s in sizes))
        padded = torch.zeros(longest, dtype=values.dtype, device=values.device)
        padded[:values.numel()] = values
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded, group=self.group)
        return torch.cat([part[:int(s)] for part, s in zip(parts, sizes)])

    def quantile(self, values: Tensor, q: float) -> Tensor:
        """``torch.quantile`` over every rank's values (order-independent, so that of one large batch)."""
        return torch.quantile(self.gather(values), q=q)


class _SumOverRanks(torch.autograd.Function):
    """y = sum over ranks of x; every rank's y feeds its own loss, so dL/dx = sum over ranks of dL/dy."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        import torch.distributed as dist

        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def current() -> Shard | None:
    return _CURRENT


@contextlib.contextmanager
def active(shard: Shard | None):
    global _CURRENT
    previous, _CURRENT = _CURRENT, shard
    try:
        yield shard
    finally:
        _CURRENT = previous


def barrier(shard: Shard | None) -> None:
    if shard is not None:
        import torch.distributed as dist

        dist.barrier(group=shard.group)


class SyncBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose train-mode statistics are those of the rows of every rank together (differentiable, as
    torch's SyncBatchNorm, which needs CUDA; this one also runs on gloo). Same parameters, buffers and state-dict
    keys as BatchNorm1d; eval mode is BatchNorm1d's. ``convert`` turns a model's BatchNorm1d layers into it in place
    (the parameter objects stay, so optimisers built before keep working)."""

    shard: Shard

    @classmethod
    def convert(cls, module: nn.Module, shard: Shard) -> nn.Module:
        for layer in module.modules():
            if type(layer) is nn.BatchNorm1d:
                layer.__class__ = cls
                layer.shard = shard
        return module

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        shard = self.shard
        count = shard.sum(torch.tensor(float(x.shape[0]), device=x.device, dtype=x.dtype))
        mean = shard.sum_grad(x.sum(0)) / count
        centred = x - mean
        var = shard.sum_grad((centred * centred).sum(0)) / count  # biased, as train-mode BatchNorm
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (count / (count - 1)), alpha=m)
        out = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out
