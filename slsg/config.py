"""SLSG's typed configuration and its command-line flags (see docs/slsg.md).

Built once at the CLI edge (``SlsgConfig.from_flags``) and validated in ``__post_init__``; ``MODEL_FIELDS`` are
the settings a trained model cannot be resumed, re-evaluated or used with other values of.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from common.errors import UserError
from datasets.tiling import check_tiling

PRETRAIN_CHOICES = ("none", "inpaint", "inpaint+pos", "off", "on")
MIN_IMAGESIZE = 96  # the graph needs (imagesize/16)^2 >= 27 nodes for its top-27 neighbours


def normalise_pretrain(value: str) -> str:
    return {"off": "none", "on": "inpaint+pos"}.get(value, value)


@dataclass
class SlsgConfig:
    imagesize: int = 256
    batch_size: int = 4
    steps: int = 7001
    lr: float = 0.04
    eval_every: int = 100
    save_every: int = 100
    encoder_weights: str | None = None
    encoder_bn: str = "train"
    slsg_beta_fix: int = 0
    pretrain: str = "inpaint+pos"
    pretrain_steps: int = 3000
    pretrain_lr: float = 1e-4
    pretrain_batch_size: int = 8
    pretrain_lambda_pos: float = 0.1
    pretrain_grid: int = 4
    seed: int = 0
    num_workers: int = 0
    tensorboard: int = 1  # event files in <checkpoint folder>/tb (shared flag --tensorboard)
    keep_aspect: int = 0  # shared flags (runner/cli.py): fit and pad instead of squashing
    tile: int = 0  # train on and score tile x tile crops of large images (0: off)
    tile_overlap: int = 0

    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "imagesize", "lr", "encoder_bn", "slsg_beta_fix", "pretrain", "pretrain_steps", "pretrain_lr",
        "pretrain_batch_size", "pretrain_lambda_pos", "pretrain_grid", "seed", "keep_aspect", "tile", "tile_overlap")

    def __post_init__(self) -> None:
        self.pretrain = normalise_pretrain(self.pretrain)
        if self.imagesize % 16 or self.imagesize < MIN_IMAGESIZE:
            raise UserError(f"--imagesize {self.imagesize}: SLSG needs a multiple of 16 of at least {MIN_IMAGESIZE} "
                            f"(256 for the released weights)")
        for flag in ("steps", "batch_size", "pretrain_batch_size", "pretrain_grid"):
            if getattr(self, flag) < 1:
                raise UserError(f"--{flag} must be at least 1, got {getattr(self, flag)}")
        for flag in ("eval_every", "save_every", "pretrain_steps", "num_workers"):
            if getattr(self, flag) < 0:
                raise UserError(f"--{flag} must be >= 0, got {getattr(self, flag)}")
        for flag in ("lr", "pretrain_lr"):
            value = getattr(self, flag)
            if not math.isfinite(value) or value <= 0:
                raise UserError(f"--{flag} must be a positive finite number, got {value}")
        if not math.isfinite(self.pretrain_lambda_pos) or self.pretrain_lambda_pos < 0:
            raise UserError(f"--pretrain_lambda_pos must be a finite number >= 0, got {self.pretrain_lambda_pos}")
        check_tiling(self.tile, self.tile_overlap)

    @classmethod
    def from_flags(cls, flags: dict) -> "SlsgConfig":
        return cls(**{f.name: flags[f.name] for f in fields(cls) if f.name in flags})

    def to_dict(self) -> dict:
        return asdict(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """SLSG's own flags (the shared ones live in ``runner.cli``)."""
    d = SlsgConfig()
    group = parser.add_argument_group("slsg")
    group.add_argument("--imagesize", type=int, default=d.imagesize,
                       help="input side (images are squashed to imagesize x imagesize with LANCZOS); the "
                            "released weights need 256; a multiple of 16, at least 96")
    group.add_argument("--batch_size", type=int, default=d.batch_size,
                       help="normal images per training step (each gets one simulated anomaly: 2x images); "
                            "also the evaluation batch size")
    group.add_argument("--steps", type=int, default=d.steps, help="training steps (the reference runs 7001)")
    group.add_argument("--lr", type=float, default=d.lr, help="SGD learning rate (one cosine decay to ~0)")
    group.add_argument("--eval_every", type=int, default=d.eval_every,
                       help="evaluate on the test set every N steps and keep the best (the reference's "
                            "selection on the test set); 0 = keep the last step only")
    group.add_argument("--save_every", type=int, default=d.save_every,
                       help="write the resumable _last checkpoint every N steps")
    group.add_argument("--encoder_weights", default=None,
                       help="torchvision resnet18 state dict for the encoder's ImageNet initialisation "
                            "(e.g. $TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth); default: random init "
                            "with a warning (no ResNet-18 ImageNet weights ship offline)")
    group.add_argument("--encoder_bn", choices=("train", "eval"), default=d.encoder_bn,
                       help="train: the frozen encoder's BatchNorms follow model.train() and update their "
                            "running stats (reference); eval: keep them fixed")
    group.add_argument("--slsg_beta_fix", type=int, default=d.slsg_beta_fix,
                       help="1: breakfast_box uses the per-branch transparency instead of the reference's "
                            "always-U(0, 0.7) bug")
    group.add_argument("--pretrain", choices=PRETRAIN_CHOICES, default=d.pretrain,
                       help="generative pre-training of the encoder before the main stage (toolkit "
                            "reconstruction of the paper): inpaint+pos (= on), inpaint, or none (= off: the "
                            "encoder starts from --encoder_weights / random, as the released code effectively ran)")
    group.add_argument("--pretrain_steps", type=int, default=d.pretrain_steps)
    group.add_argument("--pretrain_lr", type=float, default=d.pretrain_lr, help="Adam lr of the encoder (decoder x10)")
    group.add_argument("--pretrain_batch_size", type=int, default=d.pretrain_batch_size)
    group.add_argument("--pretrain_lambda_pos", type=float, default=d.pretrain_lambda_pos,
                       help="weight of the position loss")
    group.add_argument("--pretrain_grid", type=int, default=d.pretrain_grid, help="position task: grid x grid cells")
