"""``--method slsg``: the toolkit's ``Method`` for SLSG (see docs/CONTRACTS.md and docs/slsg.md)."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch

from common.checkpoint_io import safe_torch_load
from common.errors import UserError
from slsg.config import SlsgConfig, add_arguments
from slsg.encoder import init_encoder
from slsg.network import SLSGNet, anomaly_map, image_score, load_network, read_state_dict

def last_path(best: Path) -> Path:
    """``<name>.tch`` -> ``<name>_last.tch``."""
    return best.with_name(f"{best.stem}_last{best.suffix}")


class SLSGMethod:
    name: ClassVar[str] = "slsg"
    config_class: ClassVar[type] = SlsgConfig
    uses_fg_masks: ClassVar[bool] = False
    needs_augpath: ClassVar[bool] = True

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    @classmethod
    def build(cls, config: SlsgConfig, device: torch.device, cls_name: str, dataset: str = "mvtec",
              augpath: str | None = None) -> "SLSGMethod":
        return cls(config, device, cls_name, dataset, augpath)

    @staticmethod
    def checkpoint_path(results_path: Path, dataset: str, cls_name: str) -> Path:
        """The best-weights file ``models/slsg/<dataset>_<class>.tch`` (``_last.tch`` beside it)."""
        return Path(results_path) / "models" / "slsg" / f"{dataset}_{cls_name}.tch"

    @staticmethod
    def wants_fg_masks(config: SlsgConfig, dataset: str, cls_name: str) -> bool:
        return False

    def __init__(self, config: SlsgConfig, device: torch.device, cls_name: str, dataset: str = "mvtec",
                 augpath: str | None = None) -> None:
        self.config = config
        self.device = device
        self.cls_name = cls_name
        self.dataset = dataset
        self.augpath = augpath
        self.imagesize = config.imagesize
        self.model = SLSGNet(grid=config.imagesize // 16, encoder_bn=config.encoder_bn).to(device)
        self.encoder_source = "random"

    # ---------------------------------------------------------------- data
    def preprocessing(self, train: bool):
        from datasets import slsg_preprocessing

        return slsg_preprocessing(self.imagesize, keep_aspect=bool(self.config.keep_aspect))

    def _train_images(self, train: Sequence) -> list[np.ndarray]:
        from datasets import read_rgb

        if not train:
            raise UserError(f"{self.cls_name}: no training images found")
        pre = self.preprocessing(train=True)
        return [pre.image_uint8(read_rgb(s.image_path)) for s in train]

    def _textures(self) -> list[str]:
        if not self.augpath:
            return []
        from datasets.synthesis.textures import TexturePool

        return TexturePool(self.augpath, reference_glob=False).paths

    # ---------------------------------------------------------------- training
    def _init_encoder(self, images: list[np.ndarray], ckpt: Path, retrain: bool) -> str:
        mode = self.config.pretrain
        weights = self.config.encoder_weights
        if mode == "none":
            return init_encoder(self.model.encoder_segment, weights)
        from slsg.pretrain import PretrainConfig, pretrain_encoder, pretrain_path

        path = pretrain_path(ckpt)
        if path.is_file() and not retrain:
            print(f"slsg: using the pre-trained encoder {path}")
        else:
            with warnings.catch_warnings():
                if weights is None:
                    warnings.simplefilter("always")
                start = init_encoder(self.model.encoder_segment, weights)
            c = self.config
            config = PretrainConfig(steps=c.pretrain_steps, lr=c.pretrain_lr, batch_size=c.pretrain_batch_size,
                                    lambda_pos=c.pretrain_lambda_pos, grid=c.pretrain_grid,
                                    position=(mode == "inpaint+pos"), seed=c.seed)
            pretrain_encoder(self.model.encoder_segment, images, config, self.device, path, start=start)
        return init_encoder(self.model.encoder_segment, path)

    def fit(self, train: Sequence, ckpt_path: Path, evaluate: Callable | None, retrain: bool = False) -> dict:
        from slsg.simulate import SLSGSimulator
        from slsg.trainer import TrainConfig, train as run_training

        best, last = Path(ckpt_path), last_path(Path(ckpt_path))
        resume = last.is_file() and not retrain
        images = self._train_images(train)
        if not resume:
            self.encoder_source = self._init_encoder(images, best, retrain)
        simulator = SLSGSimulator(self.cls_name, self._textures(), images, beta_fix=bool(self.config.slsg_beta_fix))
        c = self.config
        config = TrainConfig(steps=c.steps, lr=c.lr, batch_size=c.batch_size, seed=c.seed, eval_every=c.eval_every,
                             save_every=c.save_every,
                             tensorboard=bool(c.tensorboard))
        record = run_training(self.model, images, simulator, config, self.device, best, last,
                              evaluate=(lambda: evaluate(self)) if evaluate is not None else None, resume=resume,
                              extra={"encoder": self.encoder_source, "imagesize": self.imagesize,
                                     "pretrain": c.pretrain, "toolkit": self.description()})
        record.pop("losses", None)
        return record

    def description(self) -> dict:
        """What rebuilds this model from its ``_last.tch`` record (plain types, loadable with weights_only=True);
        the best ``.tch`` stays the reference's bare state dict."""
        return {"method": self.name, "config": self.config.to_dict(), "class_name": self.cls_name,
                "dataset": self.dataset}

    # ---------------------------------------------------------------- inference
    def load(self, path: Path, which: str = "best") -> dict:
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.tch") if not p.stem.endswith("_last"))
            if len(files) != 1:
                raise UserError(f"--checkpoint {path}: expected one SLSG .tch file in the folder, found {len(files)}")
            path = files[0]
        if which == "last":
            path = path if path.stem.endswith("_last") else last_path(path)
        if not path.is_file():
            raise UserError(f"no SLSG {which} checkpoint at {path}")
        state = read_state_dict(path)
        pos = state.get("GCN3.relative_pos")
        if pos is not None and pos.shape[-1] != self.model.GCN3.relative_pos.shape[-1]:
            grid = int(round(pos.shape[-1] ** 0.5))
            raise UserError(f"{path} was trained at --imagesize {grid * 16}; pass --imagesize {grid * 16}")
        load_network(self.model, state, str(path))
        self.model.to(self.device).eval()
        return {"epoch": self._step_of(path, which)}

    @staticmethod
    def _step_of(path: Path, which: str) -> int | None:
        last = path if path.stem.endswith("_last") else last_path(path)
        if not last.is_file():
            return None  # a released / foreign state dict: no training record
        record = safe_torch_load(last, "SLSG training checkpoint")
        if not isinstance(record, dict) or "step" not in record:
            return None
        return int(record["step"]) if which == "last" else record.get("best", {}).get("step")

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """images (B,3,S,S) normalised -> (scores (B,) top-100 mean, maps (B,S,S) float32 softmax class 1)."""
        self.model.eval()
        seg, _ = self.model(images.to(self.device, torch.float32))
        maps = anomaly_map(seg)
        return image_score(maps).double().cpu().numpy(), maps.float().cpu().numpy()


METHOD = SLSGMethod
