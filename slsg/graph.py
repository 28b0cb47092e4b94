"""The self-attentive graph block (``GCN3`` of the reference: a ViG ``Grapher`` with SLSG's changes).

On the deepest map (B,512,16,16) the 256 positions are graph nodes. One projection (``f_query`` *is* ``f_key``,
so Q == K) feeds a dense, unscaled softmax relation and a sparse top-k relation whose score is cosine similarity
plus the fixed position term ``relative_pos`` (which, added to a similarity, prefers *distant* nodes: reproduced as
the reference computes it). Nodes are updated with max-relative aggregation over the 9 kept neighbours.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """MAE 1-D sin-cos embedding in float64: (M,) -> (M, dim) = [sin(p*w_d), cos(p*w_d)], w_d = 10000^(-2d/dim)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """MAE 2-D sin-cos embedding (grid*grid, dim), raster order; first half from the row index, second from columns."""
    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    # MAE stacks (w, h) from meshgrid(grid_w, grid_h) and embeds grid[0] first.
    return np.concatenate([sincos_1d(dim // 2, gw), sincos_1d(dim // 2, gh)], axis=1)


def relative_position(dim: int, grid: int) -> torch.Tensor:
    """``-(2 P P^T / dim)`` as float32, shape (1, grid^2, grid^2); values in [-1, -0.64] for dim 512, grid 16."""
    pos = sincos_2d(dim, grid)
    rel = 2 * np.matmul(pos, pos.T) / pos.shape[1]
    return -torch.from_numpy(rel).float().unsqueeze(0)


class _KnnGraph(nn.Module):
    """Sparse relation: top ``k*dilation`` of cos(q_i, k_j) + relative_pos_ij per node, every ``dilation``-th kept."""

    def __init__(self, channels: int, k: int = 9, dilation: int = 3) -> None:
        super().__init__()
        self.k, self.dilation = k, dilation
        self.f_key = nn.Sequential(nn.Conv2d(channels, channels // 2, 1), nn.BatchNorm2d(channels // 2))
        self.f_query = self.f_key  # the reference registers one module under both names (Q == K)

    @torch.no_grad()
    def neighbours(self, q: torch.Tensor, relative_pos: torch.Tensor) -> torch.Tensor:
        """q: (B,C',N,1) projected nodes -> (B,N,k) neighbour indices in rank order (no gradient, as the reference)."""
        qn = F.normalize(q.squeeze(-1).transpose(1, 2), p=2.0, dim=-1)  # (B,N,C')
        score = torch.matmul(qn, qn.transpose(2, 1)) + relative_pos
        _, idx = torch.topk(score, k=self.k * self.dilation, dim=-1)
        return idx[:, :, ::self.dilation]


class _MRConvAttention(nn.Module):
    """``h' = h + W(A V)``, ``m = max_j (h_j - h_i)``, then ``GELU(BN(GroupConv(interleave(h', m))))``."""

    def __init__(self, channels: int, groups: int = 4) -> None:
        super().__init__()
        self.nn = nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 1, groups=groups),
                                nn.BatchNorm2d(2 * channels), nn.GELU())
        self.f_value = nn.Conv2d(channels, channels, 3, padding=1)  # on (B,C,N,1): a width-3 conv along raster order
        self.W = nn.Conv2d(channels, channels, 1)
        nn.init.kaiming_normal_(self.nn[0].weight)
        nn.init.zeros_(self.nn[0].bias)
        for conv in (self.f_value, self.W):
            nn.init.normal_(conv.weight, 0.0, 0.02)
            nn.init.zeros_(conv.bias)

    def forward(self, h: torch.Tensor, attention: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """h: (B,C,N,1); attention: (B,N,N) row-softmaxed; idx: (B,N,k) -> (B,2C,N,1)."""
        b, c, n, _ = h.shape
        value = self.f_value(h).squeeze(-1)  # (B,C,N)
        context = torch.matmul(value, attention.transpose(1, 2)).unsqueeze(-1)  # (AV)_i = sum_j A_ij V_j
        h_new = h + self.W(context)
        flat = h.squeeze(-1)  # (B,C,N)
        k = idx.shape[-1]
        gathered = torch.gather(flat, 2, idx.reshape(b, 1, n * k).expand(b, c, n * k)).reshape(b, c, n, k)
        relative, _ = torch.max(gathered - h, dim=-1, keepdim=True)  # (B,C,N,1)
        mixed = torch.stack([h_new, relative], dim=2).reshape(b, 2 * c, n, 1)  # [h'_0, m_0, h'_1, m_1, ...]
        return self.nn(mixed)


class _DyGraphConv(nn.Module):
    """Attribute layout of ViG's ``DyGraphConv2d`` (``gconv``, ``dilated_knn_graph``) for strict loading."""

    def __init__(self, channels: int, k: int, dilation: int) -> None:
        super().__init__()
        self.gconv = _MRConvAttention(channels)
        self.dilated_knn_graph = _KnnGraph(channels, k, dilation)

    def forward(self, h: torch.Tensor, relative_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h: (B,C,H,W) -> ((B,2C,H,W), neighbour indices (B,N,k))."""
        b, c, hh, ww = h.shape
        nodes = h.reshape(b, c, -1, 1)
        knn = self.dilated_knn_graph
        q = knn.f_query(nodes)
        # Training calls the shared module twice, as the reference does (its BN running stats move twice per
        # step); in eval mode the second call would return the same tensor, so it is skipped.
        k = knn.f_key(nodes) if self.training else q
        qt = q.squeeze(-1)
        attention = torch.softmax(torch.matmul(qt.transpose(1, 2), k.squeeze(-1)), dim=-1)  # unscaled
        idx = knn.neighbours(q, relative_pos)
        out = self.gconv(nodes, attention, idx)
        return out.reshape(b, -1, hh, ww), idx


class GraphBlock(nn.Module):
    """``out = x + fc2(graph_conv(fc1(x)))``; x: (B,512,16,16) -> (B,512,16,16). Node count fixed at grid^2."""

    def __init__(self, channels: int = 512, grid: int = 16, k: int = 9, dilation: int = 3) -> None:
        super().__init__()
        self.relative_pos = nn.Parameter(relative_position(channels, grid), requires_grad=False)
        self.fc1 = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.graph_conv = _DyGraphConv(channels, k, dilation)
        self.fc2 = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels))
        self.last_neighbours: torch.Tensor | None = None  # (B,N,k) of the latest forward, for diagnostics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2] * x.shape[-1]
        if n != self.relative_pos.shape[-1]:
            raise ValueError(f"graph block built for {self.relative_pos.shape[-1]} nodes, got a "
                             f"{x.shape[-2]}x{x.shape[-1]} map (the input size must be 16 x this grid)")
        out, idx = self.graph_conv(self.fc1(x), self.relative_pos)
        self.last_neighbours = idx
        return x + self.fc2(out)
