"""The exported networks: uint8 NHWC RGB images in; ``score``, ``map`` and ``anomalous`` out.

Everything between the camera frame at the model's input size and the decision is inside the graph: scaling to
[0, 1], normalisation with the backbone's statistics, the network, the map's upsampling and smoothing, the image
score and the stored threshold. The computations equal the toolkit's inference up to float rounding:

* GLASS: the patch embedding of ``glass.embed.PatchEmbedder`` (unfold -> per-layer channel pooling -> bilinear
  upsampling -> aggregator pooling), with ``adaptive_avg_pool1d`` written as a gather of each window's few
  channels and a weighted sum (weights 1 / window length, windows as torch's), which ONNX can express; then
  projection + discriminator (``GlassNet.score_embedding``); map = bilinear upsampling (align_corners=False) then
  the scipy-equal Gaussian (sigma 4, reflect borders), both separable and linear, folded into two matrices:
  map = A_h P A_w^T.
* SLSG: the whole network, class-1 softmax map, top-100 mean score.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glass.inference import MAP_SIGMA, _reflect_index, gaussian_kernel
from glass.network import GlassNet
from slsg.network import SLSGNet, anomaly_map, image_score


class Normalise(nn.Module):
    """uint8 (B, H, W, 3) RGB -> float32 (B, 3, H, W) ``(x / 255 - mean) / std``, as ``Preprocessing.image``."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32).div(255)
        return x.sub(self.mean).div(self.std)


class ChannelPool(nn.Module):
    """``adaptive_avg_pool1d`` over axis 1: (B, L, N) -> (B, size, N), exportable. Window i is
    [floor(i L / size), ceil((i + 1) L / size)); a reshape + mean when size divides L."""

    def __init__(self, length: int, size: int) -> None:
        super().__init__()
        self.length, self.size = int(length), int(size)
        self.even = length % size == 0
        starts = [(i * length) // size for i in range(size)]
        ends = [-((-(i + 1) * length) // size) for i in range(size)]
        width = max(e - s for s, e in zip(starts, ends))
        index = torch.zeros(size, width, dtype=torch.int64)
        weight = torch.zeros(size, width, 1)
        for i, (start, end) in enumerate(zip(starts, ends)):
            index[i, :end - start] = torch.arange(start, end)
            weight[i, :end - start] = 1.0 / (end - start)
        self.register_buffer("index", index.flatten())
        self.register_buffer("weight", weight)

    def forward(self, x: Tensor) -> Tensor:
        if self.even:
            return x.reshape(x.shape[0], self.size, self.length // self.size, x.shape[-1]).mean(2)
        gathered = torch.index_select(x, 1, self.index).reshape(x.shape[0], self.size, -1, x.shape[-1])
        return (gathered * self.weight).sum(2)


def upsampling_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) float64: 1-D bilinear resize, align_corners=False (torch's weights)."""
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, n_in, 1)
    out = F.interpolate(basis, size=(n_out, 1), mode="bilinear", align_corners=False)
    return out.reshape(n_in, n_out).T.contiguous()


def gaussian_matrix(n: int, sigma: float = MAP_SIGMA) -> Tensor:
    """(n, n) float64: the 1-D pass of ``glass.inference.gaussian_blur`` (scipy's weights, reflect borders)."""
    if sigma <= 0:
        return torch.eye(n, dtype=torch.float64)
    kernel = gaussian_kernel(sigma)
    radius = (kernel.numel() - 1) // 2
    index = _reflect_index(n, radius, torch.device("cpu"))
    matrix = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        matrix[i].index_add_(0, index[i:i + 2 * radius + 1], kernel)
    return matrix


class GlassGraph(nn.Module):
    def __init__(self, net: GlassNet, image_size: tuple[int, int], mean, std, threshold: float | None,
                 sigma: float = MAP_SIGMA) -> None:
        super().__init__()
        net = net.eval()
        self.normalise = Normalise(mean, std)
        self.backbone = net.backbone
        self.net = net
        embedder = net.embedder
        with torch.no_grad():
            features = self.backbone(torch.zeros(1, 3, *image_size))
        self.grid = embedder.grid(features)
        self.pad, self.k = (embedder.patchsize - 1) // 2, embedder.patchsize
        target, pretrain = embedder.target_dim, embedder.pretrain_dim
        self.layer_pools = nn.ModuleList(ChannelPool(f.shape[1] * self.k * self.k, pretrain) for f in features)
        self.aggregate = ChannelPool(len(features) * pretrain, target)
        rows = gaussian_matrix(image_size[0], sigma) @ upsampling_matrix(self.grid[0], image_size[0])
        cols = gaussian_matrix(image_size[1], sigma) @ upsampling_matrix(self.grid[1], image_size[1])
        self.register_buffer("map_rows", rows.float())  # (H, h)
        self.register_buffer("map_cols_t", cols.T.contiguous().float())  # (w, W)
        self.register_buffer("threshold", torch.tensor(float("inf") if threshold is None else threshold,
                                                       dtype=torch.float32))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features = self.backbone(self.normalise(images))
        planes = []
        for feature, pool in zip(features, self.layer_pools):
            unfolded = F.unfold(feature, kernel_size=self.k, padding=self.pad)  # (B, C*k*k, h*w), (c, ky, kx)
            height = feature.shape[-2] + 2 * self.pad - self.k + 1
            plane = pool(unfolded).reshape(unfolded.shape[0], -1, height, unfolded.shape[-1] // height)
            if tuple(plane.shape[-2:]) != self.grid:
                plane = F.interpolate(plane, size=self.grid, mode="bilinear", align_corners=False)
            planes.append(plane.flatten(2))
        embedding = self.aggregate(torch.cat(planes, 1))  # (B, T, h*w)
        rows = embedding.transpose(1, 2).reshape(-1, embedding.shape[1])
        patch = self.net.score_embedding(rows).reshape(-1, *self.grid)
        score = patch.flatten(1).amax(dim=1)
        amap = torch.matmul(torch.matmul(self.map_rows, patch), self.map_cols_t)
        return score, amap, score >= self.threshold


class SlsgGraph(nn.Module):
    def __init__(self, model: SLSGNet, mean, std, threshold: float | None) -> None:
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.model = model.eval()
        self.register_buffer("threshold", torch.tensor(float("inf") if threshold is None else threshold,
                                                       dtype=torch.float32))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        seg, _ = self.model(self.normalise(images))
        amap = anomaly_map(seg)
        score = image_score(amap)
        return score, amap, score >= self.threshold
