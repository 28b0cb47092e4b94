"""``SLSGNet``: the reference ``ProjectionNet`` (state-dict compatible with the released ``<class>.tch`` files)."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.backbone import load_state_dict_file
from common.errors import UserError
from slsg.decoder import Decoder, aux_features, aux_logits
from slsg.encoder import EncoderSegment
from slsg.graph import GraphBlock
from slsg.lka import SpatialAttention

GRID = 16  # the graph block's node grid: the input must be 16 * GRID = 256 pixels square


class SLSGNet(nn.Module):
    """x: (B,3,256,256) ImageNet-normalised -> (seg logits (B,2,256,256), aux logits (B,2,256,256)).

    ``seg`` already includes the aux logits (the reference sums them). ``encoder_bn``: ``"train"`` reproduces the
    reference (the frozen encoder's BatchNorms follow ``model.train()`` and update their running stats);
    ``"eval"`` keeps them in eval mode.
    """

    def __init__(self, grid: int = GRID, encoder_bn: str = "train") -> None:
        super().__init__()
        if encoder_bn not in ("train", "eval"):
            raise UserError(f"--encoder_bn: expected train or eval, got {encoder_bn!r}")
        self.encoder_bn = encoder_bn
        self.encoder_segment = EncoderSegment()
        self.encoder_segment.requires_grad_(False)
        self.decoder_segment = Decoder()
        self.aux0 = aux_features()
        self.aux0_out = aux_logits()
        self.LKA64 = SpatialAttention(64)
        self.LKA128 = SpatialAttention(128)
        self.LKA256 = SpatialAttention(256)
        self.GCN3 = GraphBlock(512, grid)

    def train(self, mode: bool = True) -> "SLSGNet":
        super().train(mode)
        if self.encoder_bn == "eval":
            self.encoder_segment.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            s0, l1, l2, l3, l4 = self.encoder_segment(x)
        g = self.GCN3(l4)
        a0 = self.aux0(g)
        aux = F.interpolate(self.aux0_out(a0), scale_factor=16, mode="bilinear", align_corners=True)  # one step
        seg = self.decoder_segment(g, self.LKA256(l3), self.LKA128(l2), self.LKA64(l1), s0, a0)
        return seg + aux, aux


def anomaly_map(seg: torch.Tensor) -> torch.Tensor:
    """(B,2,H,W) logits -> (B,H,W) class-1 softmax probability."""
    return torch.softmax(seg, dim=1)[:, 1]


def image_score(maps: torch.Tensor, top: int = 100) -> torch.Tensor:
    """(B,H,W) -> (B,) mean of the ``top`` largest values (the reference's image score)."""
    flat = maps.reshape(maps.shape[0], -1)
    return torch.topk(flat, min(top, flat.shape[1]), dim=1).values.mean(dim=1)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A whole-network ``<class>.tch`` state dict, floating tensors widened to float32. Raises ``UserError``."""
    # the toolkit's resumable checkpoint holds the state dict under "model"
    return load_state_dict_file(path, "--checkpoint", nested=("model",))


def load_network(model: SLSGNet, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load; a key mismatch becomes a ``UserError`` naming the source."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise UserError(f"{source} is not an SLSG (ProjectionNet) state dict: {str(error).splitlines()[0]} "
                        f"{str(error)[:300]}") from error
