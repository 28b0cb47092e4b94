"""``--method slsg``: the toolkit's ``Method`` for SLSG (see docs/CONTRACTS.md and docs/slsg.md)."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch

from common.errors import UserError
from slsg.encoder import init_encoder
from slsg.network import SLSGNet, anomaly_map, image_score, load_network, read_state_dict

PRETRAIN_CHOICES = ("none", "inpaint", "inpaint+pos", "off", "on")
MIN_IMAGESIZE = 96  # the graph needs (imagesize/16)^2 >= 27 nodes for its top-27 neighbours


def last_path(best: Path) -> Path:
    """``<name>.tch`` -> ``<name>_last.tch``."""
    return best.with_name(f"{best.stem}_last{best.suffix}")


def normalise_pretrain(value: str) -> str:
    return {"off": "none", "on": "inpaint+pos"}.get(value, value)


class SLSGMethod:
    name: ClassVar[str] = "slsg"
    uses_fg_masks: ClassVar[bool] = False
    needs_augpath: ClassVar[bool] = True

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("slsg")
        group.add_argument("--imagesize", type=int, default=256,
                           help="input side (images are squashed to imagesize x imagesize with LANCZOS); the "
                                "released weights need 256; a multiple of 16, at least 96")
        group.add_argument("--batch_size", type=int, default=4,
                           help="normal images per training step (each gets one simulated anomaly: 2x images); "
                                "also the evaluation batch size")
        group.add_argument("--steps", type=int, default=7001, help="training steps (the reference runs 7001)")
        group.add_argument("--lr", type=float, default=0.04, help="SGD learning rate (one cosine decay to ~0)")
        group.add_argument("--eval_every", type=int, default=100,
                           help="evaluate on the test set every N steps and keep the best (the reference's "
                                "selection on the test set); 0 = keep the last step only")
        group.add_argument("--save_every", type=int, default=100, help="write the resumable _last checkpoint "
                                                                      "every N steps")
        group.add_argument("--encoder_weights", default=None,
                           help="torchvision resnet18 state dict for the encoder's ImageNet initialisation "
                                "(e.g. $TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth); default: random init "
                                "with a warning (no ResNet-18 ImageNet weights ship offline)")
        group.add_argument("--encoder_bn", choices=("train", "eval"), default="train",
                           help="train: the frozen encoder's BatchNorms follow model.train() and update their "
                                "running stats (reference); eval: keep them fixed")
        group.add_argument("--slsg_beta_fix", type=int, default=0,
                           help="1: breakfast_box uses the per-branch transparency instead of the reference's "
                                "always-U(0, 0.7) bug")
        group.add_argument("--pretrain", choices=PRETRAIN_CHOICES, default="inpaint+pos",
                           help="generative pre-training of the encoder before the main stage (toolkit "
                                "reconstruction of the paper): inpaint+pos (= on), inpaint, or none (= off: the "
                                "encoder starts from --encoder_weights / random, as the released code effectively ran)")
        group.add_argument("--pretrain_steps", type=int, default=3000)
        group.add_argument("--pretrain_lr", type=float, default=1e-4, help="Adam lr of the encoder (decoder x10)")
        group.add_argument("--pretrain_batch_size", type=int, default=8)
        group.add_argument("--pretrain_lambda_pos", type=float, default=0.1, help="weight of the position loss")
        group.add_argument("--pretrain_grid", type=int, default=4, help="position task: grid x grid cells")

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device, cls_name: str) -> "SLSGMethod":
        return cls(args, device, cls_name)

    @staticmethod
    def checkpoint_dir(results_path: Path, dataset: str, cls_name: str) -> Path:
        return Path(results_path) / "models" / "slsg" / f"{dataset}_{cls_name}.tch"

    def __init__(self, args: argparse.Namespace, device: torch.device, cls_name: str) -> None:
        size = int(getattr(args, "imagesize", 256))
        if size % 16 or size < MIN_IMAGESIZE:
            raise UserError(f"--imagesize {size}: SLSG needs a multiple of 16 of at least {MIN_IMAGESIZE} "
                            f"(256 for the released weights)")
        for flag in ("steps", "batch_size"):
            if int(getattr(args, flag, 1)) < 1:
                raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
        if float(getattr(args, "lr", 0.04)) <= 0:
            raise UserError(f"--lr must be positive, got {args.lr}")
        self.args = args
        self.device = device
        self.cls_name = cls_name
        self.imagesize = size
        self.model = SLSGNet(grid=size // 16, encoder_bn=getattr(args, "encoder_bn", "train")).to(device)
        self.encoder_source = "random"

    # ---------------------------------------------------------------- data
    def preprocessing(self, train: bool):
        from datasets import slsg_preprocessing

        return slsg_preprocessing(self.imagesize, keep_aspect=bool(getattr(self.args, "keep_aspect", 0)))

    def _train_images(self, train: Sequence) -> list[np.ndarray]:
        from datasets import read_rgb

        if not train:
            raise UserError(f"{self.cls_name}: no training images found")
        pre = self.preprocessing(train=True)
        return [pre.image_uint8(read_rgb(s.image_path)) for s in train]

    def _textures(self) -> list[str]:
        augpath = getattr(self.args, "augpath", None)
        if not augpath:
            return []
        from datasets.synthesis.textures import TexturePool

        return TexturePool(augpath, reference_glob=False).paths

    # ---------------------------------------------------------------- training
    def _init_encoder(self, images: list[np.ndarray], ckpt: Path) -> str:
        mode = normalise_pretrain(getattr(self.args, "pretrain", "none"))
        weights = getattr(self.args, "encoder_weights", None)
        if mode == "none":
            return init_encoder(self.model.encoder_segment, weights)
        from slsg.pretrain import PretrainConfig, pretrain_encoder, pretrain_path

        path = pretrain_path(ckpt)
        if path.is_file() and not getattr(self.args, "retrain", False):
            print(f"slsg: using the pre-trained encoder {path}")
        else:
            with warnings.catch_warnings():
                if weights is None:
                    warnings.simplefilter("always")
                start = init_encoder(self.model.encoder_segment, weights)
            config = PretrainConfig(steps=self.args.pretrain_steps, lr=self.args.pretrain_lr,
                                    batch_size=self.args.pretrain_batch_size, lambda_pos=self.args.pretrain_lambda_pos,
                                    grid=self.args.pretrain_grid, position=(mode == "inpaint+pos"),
                                    seed=self.args.seed)
            pretrain_encoder(self.model.encoder_segment, images, config, self.device, path, start=start)
        return init_encoder(self.model.encoder_segment, path)

    def fit(self, train: Sequence, ckpt_dir: Path, evaluate: Callable | None) -> dict:
        from slsg.simulate import SLSGSimulator
        from slsg.trainer import TrainConfig, train as run_training

        best, last = Path(ckpt_dir), last_path(Path(ckpt_dir))
        resume = last.is_file() and not getattr(self.args, "retrain", False)
        images = self._train_images(train)
        if not resume:
            self.encoder_source = self._init_encoder(images, best)
        simulator = SLSGSimulator(self.cls_name, self._textures(), images,
                                  beta_fix=bool(getattr(self.args, "slsg_beta_fix", 0)))
        config = TrainConfig(steps=self.args.steps, lr=self.args.lr, batch_size=self.args.batch_size,
                             seed=self.args.seed, eval_every=self.args.eval_every, save_every=self.args.save_every)
        record = run_training(self.model, images, simulator, config, self.device, best, last,
                              evaluate=(lambda: evaluate(self)) if evaluate is not None else None, resume=resume,
                              extra={"encoder": self.encoder_source, "imagesize": self.imagesize,
                                     "pretrain": normalise_pretrain(getattr(self.args, "pretrain", "none"))})
        record.pop("losses", None)
        return record

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
        record = torch.load(last, map_location="cpu", weights_only=False)
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
