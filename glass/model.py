"""Projection P and discriminator D (glass.md §4), with the reference's state-dict key names.

P: ``layers.{i}fc`` Linear layers (``pre_proj`` of them, no activation by default).
D: ``body.block{i}`` = Linear -> BatchNorm1d -> LeakyReLU(0.2) for ``dsc_layers - 1`` blocks, ``tail`` = Linear (no
bias) -> Sigmoid. Output in (0, 1), 1 = anomalous. Linear weights ``xavier_normal_``; biases and BN at defaults.
"""
from __future__ import annotations

from torch import Tensor, nn

LEAKY_SLOPE = 0.2


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)


class Projection(nn.Module):
    """(N, in_dim) -> (N, out_dim); ``n_layers`` Linear layers (LeakyReLU between them only if layer_type > 1)."""

    def __init__(self, in_dim: int, out_dim: int | None = None, n_layers: int = 1, layer_type: int = 0) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        self.layers = nn.Sequential()
        for i in range(n_layers):
            self.layers.add_module(f"{i}fc", nn.Linear(in_dim if i == 0 else out_dim, out_dim))
            if i < n_layers - 1 and layer_type > 1:
                self.layers.add_module(f"{i}relu", nn.LeakyReLU(LEAKY_SLOPE))
        self.apply(_init_linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def is_affine(self) -> bool:
        """True when P is an affine map (no activation), so that P(mean x) = mean P(x)."""
        return all(isinstance(m, nn.Linear) for m in self.layers)

    def affine(self) -> tuple[Tensor, Tensor]:
        """(W, b) with P(x) = x W^T + b, for an affine P (composes the Linear layers)."""
        weight, bias = None, None
        for layer in self.layers:
            if weight is None:
                weight, bias = layer.weight, layer.bias
            else:
                weight, bias = layer.weight @ weight, layer.weight @ bias + layer.bias
        return weight, bias


class Discriminator(nn.Module):
    """(N, in_dim) -> (N, 1) anomaly probability."""

    def __init__(self, in_dim: int, n_layers: int = 2, hidden: int | None = None) -> None:
        super().__init__()
        width = in_dim
        self.body = nn.Sequential()
        for i in range(n_layers - 1):
            previous = in_dim if i == 0 else width
            width = int(width // 1.5) if hidden is None else int(hidden)
            self.body.add_module(f"block{i + 1}", nn.Sequential(
                nn.Linear(previous, width), nn.BatchNorm1d(width), nn.LeakyReLU(LEAKY_SLOPE)))
        self.tail = nn.Sequential(nn.Linear(width, 1, bias=False), nn.Sigmoid())
        self.apply(_init_linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(self.body(x))

    def single_block(self) -> tuple[nn.Linear, nn.BatchNorm1d] | None:
        """The (Linear, BatchNorm1d) of the default one-hidden-block layout, else None."""
        if len(self.body) != 1:
            return None
        linear, norm, _ = self.body[0]
        return linear, norm


def count_bn_forwards(disc: Discriminator) -> int:
    """``num_batches_tracked`` of the first BN (0 when D has no BN)."""
    for module in disc.modules():
        if isinstance(module, nn.BatchNorm1d):
            return int(module.num_batches_tracked)
    return 0


