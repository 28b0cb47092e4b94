"""GLASS behind the ``common.method.Method`` interface, with the reference's flags (glass.md §2)."""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import torch

from common.errors import UserError
from glass import checkpoint as ckpt
from glass.distribution import fft_judge, resolve_svd, table_value
from glass.gas import GasConfig
from glass.inference import scores_and_maps
from glass.network import GlassNet, reference_bn_probe
from glass.trainer import CentreCache, LasDataset, Trainer, TrainConfig

DEFAULT_BACKBONE = "wideresnet50"
DEFAULT_LAYERS = ("layer2", "layer3")
CHECKPOINT_ALIASES = {"mad-man": "mvtec", "mad-sys": "mvtec"}


def add_glass_arguments(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("glass: network (reference `net` options)")
    net.add_argument("-b", "--backbone_names", action="append", default=None,
                     help=f"backbone (default {DEFAULT_BACKBONE}; torchvision IMAGENET1K_V1 weights for the ResNets)")
    net.add_argument("-le", "--layers_to_extract_from", action="append", default=None,
                     help="backbone layer to read (repeat; default layer2 and layer3)")
    net.add_argument("--backbone_weights", default=None,
                     help="local state-dict file for the backbone (float16 is widened); default: the torch-hub "
                          "cache file (ResNets) or the packaged offline weights")
    net.add_argument("--pretrain_embed_dimension", type=int, default=1024, help="per-layer width after pooling")
    net.add_argument("--target_embed_dimension", type=int, default=1024, help="P and D input width")
    net.add_argument("--patchsize", type=int, default=3, help="neighbourhood aggregated per patch")
    net.add_argument("--meta_epochs", type=int, default=640, help="training epochs")
    net.add_argument("--eval_epochs", type=int, default=1,
                     help="evaluate on the test set every N epochs, keep the best (0: never; the last epoch is kept)")
    net.add_argument("--dsc_layers", type=int, default=2, help="discriminator depth")
    net.add_argument("--dsc_hidden", type=int, default=1024, help="discriminator hidden width")
    net.add_argument("--dsc_margin", type=float, default=0.5, help="only for the logged accuracies")
    net.add_argument("--pre_proj", type=int, default=1, help="Linear layers in the projection (0: none)")
    net.add_argument("--mining", type=int, default=1, help="1: gradient ascent in GAS; 0: noise only")
    net.add_argument("--noise", type=float, default=0.015, help="std of the GAS Gaussian noise")
    net.add_argument("--radius", type=float, default=0.75, help="quantile used for r_t, r_g, r_f")
    net.add_argument("--p", type=float, default=0.5, help="hard-mining quantile of the focal loss (0: off)")
    net.add_argument("--lr", type=float, default=1e-4, help="projection learning rate; the discriminator uses 2x")
    net.add_argument("--step", type=int, default=20, help="gradient-ascent steps")
    net.add_argument("--limit", type=int, default=392, help="an epoch stops after the batch that passes this count")
    net.add_argument("--svd", type=int, default=None, help=argparse.SUPPRESS)  # accepted, unused (as the reference)
    net.add_argument("--center_mean", choices=("batch", "exact"), default="batch",
                     help="GAS centre: mean of batch means (reference) or the exact mean over the training images")
    net.add_argument("--gas_impl", choices=("fast", "reference"), default="fast",
                     help="GAS computation: the optimised one or the reference order (same result, slower)")
    net.add_argument("--embedding_cache", type=float, default=4.0,
                     help="GiB of CPU memory for caching the clean training images' embeddings (training then runs "
                          "the backbone on the LAS images only; same results); 0 or a set too large for it: no cache")
    net.add_argument("--bn_probe", type=int, default=1, choices=(0, 1),
                     help="1: reproduce the reference's one train-mode forward of a constant image through the "
                          "backbone (moves its BatchNorm statistics; needed for reference checkpoints); 0: pristine")
    data = parser.add_argument_group("glass: data (reference `dataset` options)")
    data.add_argument("--distribution", type=int, default=0, choices=range(5),
                      help="0: built-in per-class table; 1: FFT judge decides, then trains; 2: manifold; "
                           "3: hypersphere; 4: opposite of the table")
    data.add_argument("--mean", type=float, default=0.5, help="mean of the LAS transparency beta")
    data.add_argument("--std", type=float, default=0.1, help="std of the LAS transparency beta")
    data.add_argument("--fg", type=int, default=1, choices=(0, 1, 2),
                      help="foreground masks for LAS: 1 all classes, 0 none, 2 per the built-in table")
    data.add_argument("--rand_aug", type=int, default=1, help="1: 3 random texture ops per LAS sample")
    data.add_argument("--resize", type=int, default=288, help="shorter side before the centre crop")
    data.add_argument("--imagesize", type=int, default=288, help="centre crop (multiple of 32)")
    data.add_argument("--downsampling", type=int, default=None,
                      help="image size / LAS patch grid (default: the stride of the first backbone layer)")


class GlassMethod:
    name: ClassVar[str] = "glass"
    needs_augpath: ClassVar[bool] = True

    def __init__(self, args: argparse.Namespace, device: torch.device, cls_name: str) -> None:
        from common.backbone import load_backbone

        self.args, self.device, self.cls_name = args, device, cls_name
        self.dataset = getattr(args, "dataset", "mvtec") or "mvtec"
        names = args.backbone_names or [DEFAULT_BACKBONE]
        if len(names) != 1:
            raise UserError(f"-b/--backbone_names: give one backbone (got {', '.join(names)})")
        layers = list(args.layers_to_extract_from or DEFAULT_LAYERS)
        for flag in ("pretrain_embed_dimension", "target_embed_dimension", "patchsize", "dsc_hidden", "imagesize",
                     "resize"):
            if getattr(args, flag) < 1:
                raise UserError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
        if args.dsc_layers < 1:
            raise UserError(f"--dsc_layers must be >= 1, got {args.dsc_layers}")
        if args.pre_proj < 0 or args.step < 0 or args.meta_epochs < 0 or args.eval_epochs < 0:
            raise UserError("--pre_proj, --step, --meta_epochs and --eval_epochs must be >= 0")
        if not 0 <= args.radius <= 1 or not 0 <= args.p < 1:
            raise UserError("--radius must be in [0, 1] and --p in [0, 1)")
        if args.svd is not None:
            warnings.warn("--svd is overwritten from --distribution (as in the reference); ignored", stacklevel=2)
        backbone = load_backbone(names[0], layers, args.backbone_weights)
        with torch.random.fork_rng(devices=[]):  # head initialisation depends on --seed only
            torch.manual_seed(int(getattr(args, "seed", 0) or 0))
            self.net = GlassNet(backbone, args.pretrain_embed_dimension, args.target_embed_dimension, args.patchsize,
                                args.pre_proj, args.dsc_layers, args.dsc_hidden).to(device)
        if args.bn_probe:
            reference_bn_probe(self.net.backbone, args.imagesize, device)
        self.net.eval()
        self.downsampling = int(args.downsampling or backbone.strides[0])
        try:
            self.svd = resolve_svd(args.distribution, self.dataset, cls_name)
            self._svd_error = None
        except UserError as error:  # only training needs it: evaluation works for any class
            self.svd, self._svd_error = 0, error

    # --- Method protocol ------------------------------------------------------------------------------------
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_glass_arguments(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device, cls_name: str) -> "GlassMethod":
        return cls(args, device, cls_name)

    @staticmethod
    def checkpoint_dir(results_path: Path, dataset: str, cls_name: str) -> Path:
        """MAD-man / MAD-sys are test-only: they evaluate the MVTec AD checkpoints (``mvtec_<class>``)."""
        return ckpt.checkpoint_dir(results_path, CHECKPOINT_ALIASES.get(dataset, dataset), cls_name)

    @staticmethod
    def wants_fg_masks(args: argparse.Namespace, cls_name: str) -> bool:
        """--fg 1: every class; 0: none; 2: per the built-in table (a class missing from it: yes, as the reference's
        fallback)."""
        if args.fg == 2:
            value = table_value(getattr(args, "dataset", "mvtec") or "mvtec", cls_name)
            return True if value is None else bool(value)
        return bool(args.fg)

    @property
    def uses_fg_masks(self) -> bool:
        return self.wants_fg_masks(self.args, self.cls_name)

    def preprocessing(self, train: bool):
        """Train: with --distribution (1 = square resize); test: class defaults, as the reference (§9 #23)."""
        from datasets.preprocess import glass_preprocessing

        backbone = self.net.backbone
        distribution = self.args.distribution if train else 0
        return glass_preprocessing(self.cls_name, self.args.resize, self.args.imagesize, backbone.mean, backbone.std,
                                   distribution, keep_aspect=bool(getattr(self.args, "keep_aspect", 0)))

    def train_config(self) -> TrainConfig:
        a = self.args
        return TrainConfig(
            meta_epochs=a.meta_epochs, eval_epochs=a.eval_epochs, limit=a.limit, lr=a.lr, noise=a.noise, p=a.p,
            gas=GasConfig(step=a.step, radius=a.radius, mining=a.mining, svd=self.svd if self.svd is not None else 0),
            seed=a.seed, batch_size=a.batch_size, num_workers=a.num_workers, center_mean=a.center_mean,
            fast=a.gas_impl == "fast", dsc_margin=a.dsc_margin, name=f"{self.dataset}_{self.cls_name}")

    def fit(self, train: Sequence, ckpt_dir: Path, evaluate=None) -> dict:
        from datasets.synthesis import GlassSynthesizer
        from datasets.torch_datasets import TrainImages

        if not train:
            raise UserError(f"{self.dataset}_{self.cls_name}: no training images")
        if self._svd_error is not None:
            raise self._svd_error
        ckpt_dir = Path(ckpt_dir)
        if getattr(self.args, "retrain", False):
            for _, path in ckpt.best_files(ckpt_dir):
                path.unlink()
            (ckpt_dir / ckpt.LATEST).unlink(missing_ok=True)
        pre = self.preprocessing(train=True)
        images = TrainImages(train, pre)
        if getattr(self.args, "embedding_cache", 0) < 0:
            raise UserError(f"--embedding_cache must be >= 0 (GiB), got {self.args.embedding_cache}")
        centre = CentreCache(self.net, images, self.args.batch_size, self.args.num_workers, self.device,
                             int(getattr(self.args, "embedding_cache", 0) * 2 ** 30))
        judge = None
        if self.svd is None:
            self.svd, judge = self._judge(centre.mean_image, pre, ckpt_dir)
        synthesizer = GlassSynthesizer(self.args.augpath, pre, self.downsampling, self.args.mean, self.args.std,
                                       self.args.rand_aug)
        las = LasDataset(images, synthesizer, self.args.seed, self.uses_fg_masks)
        trainer = Trainer(self.net, self.train_config(), self.device,
                          extra_state={"svd": int(self.svd), "preprocessing": pre.to_dict()})
        name = f"{self.dataset}_{self.cls_name}"
        if trainer.resume(ckpt_dir):
            done = trainer.start_epoch
            if done >= self.args.meta_epochs:
                print(f"[{name}] already trained for {done} epoch(s) in {ckpt_dir}; evaluating "
                      f"(--retrain starts over, a larger --meta_epochs continues)")
            else:
                print(f"[{name}] resuming from {ckpt_dir / ckpt.LATEST} after epoch {done}")
        print(f"[{name}] GAS: {'hypersphere' if self.svd == 1 else 'manifold'}; {len(train)} training images")
        record = trainer.fit(las, centre, ckpt_dir, (lambda: evaluate(self)) if evaluate else None)
        self.net.eval()
        record["svd"] = int(self.svd)
        if judge is not None:
            record["judge"] = judge
        return record

    def _judge(self, mean_image: torch.Tensor, pre, ckpt_dir: Path) -> tuple[int, dict]:
        from common.atomic import atomic_write_text

        mean = np.asarray(pre.mean, np.float32)[:, None, None]
        std = np.asarray(pre.std, np.float32)[:, None, None]
        rgb = np.clip((mean_image.numpy() * std + mean) * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        flag, stats = fft_judge(np.ascontiguousarray(rgb[:, :, ::-1]))
        name = f"{self.dataset}_{self.cls_name}"
        print(f"[{name}] FFT judge: {'hypersphere (1)' if flag else 'manifold (0)'} "
              f"(n={stats['n']}, radius={stats['radius']:.1f}, l1={stats['l1_density']:.3f}, "
              f"l2={stats['l2_density']:.3f}); training with it")
        path = Path(ckpt_dir).parents[2] / "judge" / f"{self.dataset}_distribution.json"
        table = json.loads(path.read_text()) if path.is_file() else {}
        table[name] = {"distribution": flag, **stats}
        atomic_write_text(path, json.dumps(table, indent=2, sort_keys=True) + "\n")
        return flag, {"distribution": flag, **stats}

    def load(self, path: Path, which: str = "best") -> dict:
        path = Path(path)
        if path.is_dir():
            if which == "last":
                file, epoch = path / ckpt.LATEST, None
                if not file.is_file():
                    raise UserError(f"no {ckpt.LATEST} in {path}")
            else:
                epoch, file = ckpt.find_best(path)
        elif path.is_file():
            file, match = path, ckpt.BEST_PATTERN.search(path.name)
            epoch = int(match[1]) if match else None
        else:
            raise UserError(f"checkpoint not found: {path}")
        state = ckpt.read(file)
        ckpt.load_heads(state, self.net.projection, self.net.discriminator, file)
        if isinstance(state.get("epoch"), int):
            epoch = state["epoch"]
        self.net.to(self.device).eval()
        return {"epoch": epoch, "path": str(file)}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """images: normalised (B, 3, H, W) -> image scores (B,) float32, maps (B, H, W) float32."""
        self.net.eval()
        images = images.to(self.device, torch.float32)
        patch, grid = self.net.patch_scores(images)
        scores, maps = scores_and_maps(patch, images.shape[0], grid, tuple(images.shape[-2:]))
        return scores.cpu().numpy(), maps.cpu().numpy()


METHOD = GlassMethod
