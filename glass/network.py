"""The GLASS network: frozen backbone -> patch embedding -> projection -> discriminator."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import precision
from glass.embed import PatchEmbedder
from glass.model import Discriminator, Projection


def reference_bn_probe(backbone: nn.Module, imagesize: int, device: torch.device) -> None:
    """Reproduce a side effect of the reference: to learn the feature widths it runs ``torch.ones(1, 3, S, S)``
    through the freshly built backbone, still in train mode, so every BatchNorm's running statistics move once
    towards those of a constant image (momentum 0.1, ``num_batches_tracked`` + 1). Reference features, and the
    heads trained on them, depend on this; the fixture test confirms it."""
    norms = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.train()
    try:
        with torch.no_grad():
            backbone(torch.ones(1, 3, imagesize, imagesize, device=device))
    finally:
        for norm in norms:
            norm.eval()


class GlassNet(nn.Module):
    def __init__(self, backbone: nn.Module, pretrain_dim: int, target_dim: int, patchsize: int, pre_proj: int,
                 dsc_layers: int, dsc_hidden: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedder = PatchEmbedder(pretrain_dim, target_dim, patchsize)
        self.projection = Projection(target_dim, target_dim, pre_proj) if pre_proj > 0 else None
        self.discriminator = Discriminator(target_dim, dsc_layers, dsc_hidden)

    def embed(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """(B, 3, H, W) -> (B*h*w, target_dim) float32 and the patch grid (h, w); no gradients (frozen backbone).

        On CUDA the convolutions run channels-last (same maths, faster kernels); ``--precision`` bf16/fp16 runs the
        backbone under autocast (common/precision.py); the embedding is float32 either way."""
        with torch.no_grad():
            if images.is_cuda:
                if not getattr(self, "_channels_last", False):
                    self.backbone.to(memory_format=torch.channels_last)
                    self._channels_last = True
                images = images.contiguous(memory_format=torch.channels_last)
            with precision.autocast(images.device):
                features = self.backbone(images)
            features = [f.float() for f in features] if isinstance(features, (list, tuple)) else features.float()
            return self.embedder(features), self.embedder.grid(features)

    def project(self, embedding: Tensor) -> Tensor:
        return self.projection(embedding) if self.projection is not None else embedding

    def patch_scores(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Eval-mode scores (B*h*w,) in (0, 1), and the grid."""
        embedding, grid = self.embed(images)
        return self.score_embedding(embedding).reshape(-1), grid

    def score_embedding(self, embedding: Tensor) -> Tensor:
        """(N, target_dim) -> D(P(x)) (N, 1). An affine P is folded into D's first Linear: one (N x D x hidden)
        product instead of (N x D x D) + (N x D x hidden); equal up to float rounding."""
        proj, disc = self.projection, self.discriminator
        if proj is None or not proj.is_affine():
            return disc(self.project(embedding))
        first, rest = (disc.body[0][0], [*disc.body[0][1:], *disc.body[1:], disc.tail]) if len(disc.body) else \
            (disc.tail[0], [disc.tail[1]])
        weight, bias = proj.affine()
        folded_bias = first.weight @ bias if first.bias is None else first.weight @ bias + first.bias
        x = F.linear(embedding, first.weight @ weight, folded_bias)
        for module in rest:
            x = module(x)
        return x
