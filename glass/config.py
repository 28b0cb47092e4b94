"""GLASS's typed configuration and its command-line flags (the reference's names, glass.md §2).

``GlassConfig`` is built once at the CLI edge from the parsed flags (``from_flags``) and validated there
(``__post_init__``); the method never sees an ``argparse.Namespace``. ``MODEL_FIELDS`` are the settings that make
a trained model what it is: a stored model cannot be resumed, re-evaluated or used with other values.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

from common.errors import UserError
from datasets.tiling import check_tiling

DEFAULT_BACKBONE = "wideresnet50"
DEFAULT_LAYERS = ("layer2", "layer3")
MIN_IMAGESIZE = 32  # the backbone's deepest layer read (stride 16) must keep a patch grid


@dataclass
class GlassConfig:
    backbone_names: list[str] = field(default_factory=lambda: [DEFAULT_BACKBONE])
    layers_to_extract_from: list[str] = field(default_factory=lambda: list(DEFAULT_LAYERS))
    backbone_weights: str | None = None
    pretrain_embed_dimension: int = 1024
    target_embed_dimension: int = 1024
    patchsize: int = 3
    meta_epochs: int = 640
    eval_epochs: int = 1
    dsc_layers: int = 2
    dsc_hidden: int = 1024
    dsc_margin: float = 0.5
    pre_proj: int = 1
    mining: int = 1
    noise: float = 0.015
    radius: float = 0.75
    p: float = 0.5
    lr: float = 1e-4
    step: int = 20
    limit: int = 392
    svd: int | None = None
    center_mean: str = "batch"
    gas_impl: str = "fast"
    embedding_cache: float = 4.0
    bn_probe: int = 1
    distribution: int = 0
    mean: float = 0.5
    std: float = 0.1
    fg: int = 1
    rand_aug: int = 1
    resize: int = 288
    imagesize: int = 288
    downsampling: int | None = None
    batch_size: int = 8
    seed: int = 0
    num_workers: int = 0
    tensorboard: int = 1  # event files in <checkpoint folder>/tb (shared flag --tensorboard)
    keep_aspect: int = 0  # shared flags (runner/cli.py): fit and pad instead of the centre crop
    tile: int = 0  # train on and score tile x tile crops of large images (0: off)
    tile_overlap: int = 0

    # Settings that define the trained model (its weights, input or training run); the rest may differ later.
    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "backbone_names", "layers_to_extract_from", "pretrain_embed_dimension", "target_embed_dimension",
        "patchsize", "dsc_layers", "dsc_hidden", "pre_proj", "mining", "noise", "radius", "p", "lr", "step",
        "limit", "center_mean", "distribution", "mean", "std", "fg", "rand_aug", "resize", "imagesize",
        "downsampling", "seed", "bn_probe", "keep_aspect", "tile", "tile_overlap")

    def __post_init__(self) -> None:
        self.backbone_names = list(self.backbone_names or [DEFAULT_BACKBONE])
        self.layers_to_extract_from = list(self.layers_to_extract_from or DEFAULT_LAYERS)
        if len(self.backbone_names) != 1:
            raise UserError(f"-b/--backbone_names: give one backbone (got {', '.join(self.backbone_names)})")
        for flag in ("pretrain_embed_dimension", "target_embed_dimension", "patchsize", "dsc_hidden", "resize",
                     "batch_size", "dsc_layers", "meta_epochs"):
            if getattr(self, flag) < 1:
                raise UserError(f"--{flag} must be >= 1, got {getattr(self, flag)}")
        if self.imagesize < MIN_IMAGESIZE:
            raise UserError(f"--imagesize {self.imagesize}: GLASS needs at least {MIN_IMAGESIZE} "
                            f"(a multiple of 32 such as 288)")
        for flag in ("pre_proj", "step", "eval_epochs", "limit", "num_workers"):
            if getattr(self, flag) < 0:
                raise UserError(f"--{flag} must be >= 0, got {getattr(self, flag)}")
        for flag in ("lr", "noise", "mean", "std", "dsc_margin", "radius", "p", "embedding_cache"):
            if not math.isfinite(getattr(self, flag)):
                raise UserError(f"--{flag} must be a finite number, got {getattr(self, flag)}")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.noise < 0 or self.std < 0:
            raise UserError("--noise and --std must be >= 0")
        if not 0 <= self.radius <= 1:
            raise UserError(f"--radius must be in [0, 1], got {self.radius}")
        if not 0 <= self.p < 1:
            raise UserError(f"--p must be in [0, 1), got {self.p}")
        if self.embedding_cache < 0:
            raise UserError(f"--embedding_cache must be >= 0 (GiB), got {self.embedding_cache}")
        if self.downsampling is not None and self.downsampling < 1:
            raise UserError(f"--downsampling must be >= 1, got {self.downsampling}")
        check_tiling(self.tile, self.tile_overlap)

    @classmethod
    def from_flags(cls, flags: dict) -> "GlassConfig":
        return cls(**{f.name: flags[f.name] for f in fields(cls) if f.name in flags})

    def to_dict(self) -> dict:
        return asdict(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """GLASS's own flags (the shared ones live in ``runner.cli``)."""
    d = GlassConfig()
    net = parser.add_argument_group("glass: network (reference `net` options)")
    net.add_argument("-b", "--backbone_names", action="append", default=None,
                     help=f"backbone (default {DEFAULT_BACKBONE}; torchvision IMAGENET1K_V1 weights for the ResNets)")
    net.add_argument("-le", "--layers_to_extract_from", action="append", default=None,
                     help="backbone layer to read (repeat; default layer2 and layer3)")
    net.add_argument("--backbone_weights", default=None,
                     help="local state-dict file for the backbone (float16 is widened); default: the torch-hub "
                          "cache file (ResNets) or the packaged offline weights")
    net.add_argument("--pretrain_embed_dimension", type=int, default=d.pretrain_embed_dimension,
                     help="per-layer width after pooling")
    net.add_argument("--target_embed_dimension", type=int, default=d.target_embed_dimension,
                     help="P and D input width")
    net.add_argument("--patchsize", type=int, default=d.patchsize, help="neighbourhood aggregated per patch")
    net.add_argument("--meta_epochs", type=int, default=d.meta_epochs, help="training epochs")
    net.add_argument("--eval_epochs", type=int, default=d.eval_epochs,
                     help="evaluate on the test set every N epochs, keep the best (0: never; the last epoch is kept)")
    net.add_argument("--dsc_layers", type=int, default=d.dsc_layers, help="discriminator depth")
    net.add_argument("--dsc_hidden", type=int, default=d.dsc_hidden, help="discriminator hidden width")
    net.add_argument("--dsc_margin", type=float, default=d.dsc_margin,
                     help="accepted for the reference's command lines; the accuracies it sets are not computed")
    net.add_argument("--pre_proj", type=int, default=d.pre_proj, help="Linear layers in the projection (0: none)")
    net.add_argument("--mining", type=int, default=d.mining, help="1: gradient ascent in GAS; 0: noise only")
    net.add_argument("--noise", type=float, default=d.noise, help="std of the GAS Gaussian noise")
    net.add_argument("--radius", type=float, default=d.radius, help="quantile used for r_t, r_g, r_f")
    net.add_argument("--p", type=float, default=d.p, help="hard-mining quantile of the focal loss (0: off)")
    net.add_argument("--lr", type=float, default=d.lr, help="projection learning rate; the discriminator uses 2x")
    net.add_argument("--step", type=int, default=d.step, help="gradient-ascent steps")
    net.add_argument("--limit", type=int, default=d.limit, help="an epoch stops after the batch that passes this count")
    net.add_argument("--svd", type=int, default=None, help=argparse.SUPPRESS)  # accepted, unused (as the reference)
    net.add_argument("--center_mean", choices=("batch", "exact"), default=d.center_mean,
                     help="GAS centre: mean of batch means (reference) or the exact mean over the training images")
    net.add_argument("--gas_impl", choices=("fast", "reference"), default=d.gas_impl,
                     help="GAS computation: the optimised one or the reference order (same result, slower)")
    net.add_argument("--embedding_cache", type=float, default=d.embedding_cache,
                     help="GiB of CPU memory for caching the clean training images' embeddings (training then runs "
                          "the backbone on the LAS images only; same results); 0 or a set too large for it: no cache")
    net.add_argument("--bn_probe", type=int, default=d.bn_probe, choices=(0, 1),
                     help="1: reproduce the reference's one train-mode forward of a constant image through the "
                          "backbone (moves its BatchNorm statistics; needed for reference checkpoints); 0: pristine")
    net.add_argument("--batch_size", type=int, default=d.batch_size, help="training and evaluation batch size")
    data = parser.add_argument_group("glass: data (reference `dataset` options)")
    data.add_argument("--distribution", type=int, default=d.distribution, choices=range(5),
                      help="0: built-in per-class table; 1: FFT judge decides, then trains; 2: manifold; "
                           "3: hypersphere; 4: opposite of the table")
    data.add_argument("--mean", type=float, default=d.mean, help="mean of the LAS transparency beta")
    data.add_argument("--std", type=float, default=d.std, help="std of the LAS transparency beta")
    data.add_argument("--fg", type=int, default=d.fg, choices=(0, 1, 2),
                      help="foreground masks for LAS: 1 all classes, 0 none, 2 per the built-in table")
    data.add_argument("--rand_aug", type=int, default=d.rand_aug, help="1: 3 random texture ops per LAS sample")
    data.add_argument("--resize", type=int, default=d.resize, help="shorter side before the centre crop")
    data.add_argument("--imagesize", type=int, default=d.imagesize, help="centre crop (multiple of 32)")
    data.add_argument("--downsampling", type=int, default=None,
                      help="image size / LAS patch grid (default: the stride of the first backbone layer)")
