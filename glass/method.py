"""GLASS behind the ``common.method.Method`` interface; its flags and typed config are in ``glass/config.py``."""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import torch

from common import data_parallel
from common.errors import UserError
from glass import checkpoint as ckpt
from glass.config import GlassConfig, add_arguments
from glass.distribution import fft_judge, resolve_svd, table_value
from glass.gas import GasConfig
from glass.inference import scores_and_maps
from glass.network import GlassNet, reference_bn_probe
from glass.trainer import CentreCache, LasDataset, ShardedCentreCache, Trainer, TrainConfig

class GlassMethod:
    name: ClassVar[str] = "glass"
    config_class: ClassVar[type] = GlassConfig
    needs_augpath: ClassVar[bool] = True

    def __init__(self, config: GlassConfig, device: torch.device, cls_name: str, dataset: str = "mvtec",
                 augpath: str | None = None) -> None:
        from common.backbone import load_backbone

        self.config, self.device, self.cls_name = config, device, cls_name
        self.dataset, self.augpath = dataset or "mvtec", augpath
        if config.svd is not None:
            warnings.warn("--svd is overwritten from --distribution (as in the reference); ignored", stacklevel=2)
        backbone = load_backbone(config.backbone_names[0], config.layers_to_extract_from, config.backbone_weights)
        with torch.random.fork_rng(devices=[]):  # head initialisation depends on --seed only
            torch.manual_seed(int(config.seed))
            self.net = GlassNet(backbone, config.pretrain_embed_dimension, config.target_embed_dimension,
                                config.patchsize, config.pre_proj, config.dsc_layers, config.dsc_hidden).to(device)
        if config.bn_probe:
            reference_bn_probe(self.net.backbone, config.imagesize, device)
        self.net.eval()
        self.downsampling = int(config.downsampling or backbone.strides[0])
        try:
            self.gas_mode = resolve_svd(config.distribution, self.dataset, cls_name)
            self._gas_mode_error = None
        except UserError as error:  # only training needs it: evaluation works for any class
            self.gas_mode, self._gas_mode_error = 0, error

    # --- Method protocol ------------------------------------------------------------------------------------
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    @classmethod
    def build(cls, config: GlassConfig, device: torch.device, cls_name: str, dataset: str = "mvtec",
              augpath: str | None = None) -> "GlassMethod":
        return cls(config, device, cls_name, dataset, augpath)

    @staticmethod
    def checkpoint_path(results_path: Path, dataset: str, cls_name: str) -> Path:
        """The checkpoint folder ``models/backbone_0/<dataset>_<class>`` (reference layout)."""
        return ckpt.checkpoint_dir(results_path, dataset, cls_name)

    @staticmethod
    def wants_fg_masks(config: GlassConfig, dataset: str, cls_name: str) -> bool:
        """--fg 1: every class; 0: none; 2: per the built-in table (a class missing from it: yes, as the reference's
        fallback)."""
        if config.fg == 2:
            value = table_value(dataset or "mvtec", cls_name)
            return True if value is None else bool(value)
        return bool(config.fg)

    @property
    def uses_fg_masks(self) -> bool:
        return self.wants_fg_masks(self.config, self.dataset, self.cls_name)

    def preprocessing(self, train: bool):
        """Train: with --distribution (1 = square resize); test: class defaults, as the reference (§9 #23)."""
        from datasets.preprocess import glass_preprocessing

        backbone = self.net.backbone
        distribution = self.config.distribution if train else 0
        return glass_preprocessing(self.cls_name, self.config.resize, self.config.imagesize, backbone.mean,
                                   backbone.std, distribution, keep_aspect=bool(self.config.keep_aspect))

    def train_config(self) -> TrainConfig:
        a = self.config
        return TrainConfig(
            meta_epochs=a.meta_epochs, eval_epochs=a.eval_epochs, limit=a.limit, lr=a.lr, noise=a.noise, p=a.p,
            gas=GasConfig(step=a.step, radius=a.radius, mining=a.mining,
                          svd=self.gas_mode if self.gas_mode is not None else 0),
            seed=a.seed, batch_size=a.batch_size, num_workers=a.num_workers, center_mean=a.center_mean,
            fast=a.gas_impl == "fast", dsc_margin=a.dsc_margin, name=f"{self.dataset}_{self.cls_name}",
            tensorboard=bool(a.tensorboard))

    def fit(self, train: Sequence, ckpt_dir: Path, evaluate=None, retrain: bool = False) -> dict:
        from datasets.synthesis import GlassSynthesizer
        from datasets.torch_datasets import TrainImages

        if not train:
            raise UserError(f"{self.dataset}_{self.cls_name}: no training images")
        if self._gas_mode_error is not None:
            raise self._gas_mode_error
        ckpt_dir = Path(ckpt_dir)
        shard = data_parallel.current()  # --ddp 1 under torchrun: this rank's share of every batch
        if retrain and (shard is None or shard.writes):
            for _, path in ckpt.best_files(ckpt_dir):
                path.unlink()
            (ckpt_dir / ckpt.LATEST).unlink(missing_ok=True)
        data_parallel.barrier(shard)  # every rank resumes from the same checkpoint (or none)
        pre = self.preprocessing(train=True)
        images = TrainImages(train, pre)
        if shard is None:
            centre = CentreCache(self.net, images, self.config.batch_size, self.config.num_workers, self.device,
                                 int(self.config.embedding_cache * 2 ** 30))
        else:
            centre = ShardedCentreCache(self.net, images, self.config.batch_size, self.config.num_workers,
                                        self.device, shard)
        judge = None
        if self.gas_mode is None:
            self.gas_mode, judge = self._judge(centre.mean_image, pre, ckpt_dir)
        synthesizer = GlassSynthesizer(self.augpath, pre, self.downsampling, self.config.mean, self.config.std,
                                       self.config.rand_aug)
        las = LasDataset(images, synthesizer, self.config.seed, self.uses_fg_masks)
        trainer = Trainer(self.net, self.train_config(), self.device,
                          extra_state={"svd": int(self.gas_mode), "preprocessing": pre.to_dict(),
                                       "toolkit": self.description()}, shard=shard)
        name = f"{self.dataset}_{self.cls_name}"
        if trainer.resume(ckpt_dir):
            done = trainer.start_epoch
            if done >= self.config.meta_epochs:
                print(f"[{name}] already trained for {done} epoch(s) in {ckpt_dir}; evaluating "
                      f"(--retrain starts over, a larger --meta_epochs continues)")
            else:
                print(f"[{name}] resuming from {ckpt_dir / ckpt.LATEST} after epoch {done}")
        print(f"[{name}] GAS: {'hypersphere' if self.gas_mode == 1 else 'manifold'}; {len(train)} training images")
        record = trainer.fit(las, centre, ckpt_dir, (lambda: evaluate(self)) if evaluate else None)
        self.net.eval()
        record["svd"] = int(self.gas_mode)
        if judge is not None:
            record["judge"] = judge
        return record

    def description(self) -> dict:
        """What rebuilds this model from its checkpoint alone (plain types, loadable with weights_only=True)."""
        return {"method": self.name, "config": self.config.to_dict(), "class_name": self.cls_name,
                "dataset": self.dataset}

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
        shard = data_parallel.current()
        if shard is not None and not shard.writes:
            return flag, {"distribution": flag, **stats}
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
        return {"epoch": epoch, "path": str(file), "toolkit": state.get("toolkit")}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """images: normalised (B, 3, H, W) -> image scores (B,) float32, maps (B, H, W) float32."""
        self.net.eval()
        images = images.to(self.device, torch.float32)
        patch, grid = self.net.patch_scores(images)
        scores, maps = scores_and_maps(patch, images.shape[0], grid, tuple(images.shape[-2:]))
        return scores.cpu().numpy(), maps.cpu().numpy()


METHOD = GlassMethod
