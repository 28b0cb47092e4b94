"""DTD texture pool and the GLASS texture augmentation (glass.md §3.1, 'Texture')."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from common.errors import UserError
from datasets.image_io import IMAGE_EXTENSIONS, read_rgb
N_OPS = 9
OPS_PER_SAMPLE = 3
OP_NAMES = ("contrast", "brightness", "saturation_hue", "hflip", "vflip", "grayscale", "autocontrast",
            "equalize", "affine")


def _read_rgb(path: str) -> Image.Image:
    return read_rgb(path)


class TexturePool:
    """Texture files under ``augpath``.

    reference_glob=True: ``sorted(glob(augpath/*/*.jpg))`` exactly as GLASS (DTD: lowercase ``.jpg`` only).
    reference_glob=False: image files (``datasets.image_io.IMAGE_EXTENSIONS``, any case, no hidden files) directly in
    ``augpath`` or one folder below, sorted.
    """

    def __init__(self, augpath: str | os.PathLike, reference_glob: bool = True):
        root = Path(augpath)
        if not root.is_dir():
            raise UserError(f"--augpath {root} is not a folder (expected a DTD-style <dtd>/images folder)")
        if reference_glob:
            paths = [str(p) for p in root.glob("*/*.jpg") if p.is_file()]
            wanted = "<category>/*.jpg files"
        else:
            candidates = list(root.glob("*")) + list(root.glob("*/*"))
            paths = [str(p) for p in candidates
                     if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
            wanted = "image files"
        self.paths: list[str] = sorted(paths)
        if not self.paths:
            raise UserError(f"--augpath {root} holds no {wanted}: point it at the DTD 'images' folder")

    def __len__(self) -> int:
        return len(self.paths)

    def choose(self, rng: np.random.Generator) -> str:
        return self.paths[int(rng.integers(len(self.paths)))]

    def sample(self, rng: np.random.Generator) -> Image.Image:
        """One texture as PIL RGB, chosen uniformly with ``rng``."""
        return _read_rgb(self.choose(rng))


def draw_ops(rng: np.random.Generator) -> list[tuple[int, dict]]:
    """3 distinct op indices of 9 in drawn order, each with its parameters drawn from ``rng``."""
    ops = []
    for idx in rng.choice(N_OPS, OPS_PER_SAMPLE, replace=False):
        idx = int(idx)
        if idx in (0, 1):
            params = {"factor": float(rng.uniform(0.8, 1.2))}
        elif idx == 2:
            # ColorJitter applies its enabled parts in a random order.
            params = {"saturation": float(rng.uniform(0.8, 1.2)), "hue": float(rng.uniform(-0.2, 0.2)),
                      "hue_first": bool(rng.random() < 0.5)}
        elif idx == 8:
            params = {"angle": float(rng.uniform(-45.0, 45.0))}
        else:
            params = {}
        ops.append((idx, params))
    return ops


def apply_op(img: Image.Image, idx: int, params: dict) -> Image.Image:
    """Apply op ``idx`` (see ``OP_NAMES``) to a PIL RGB image with fixed parameters."""
    if idx == 0:
        return F.adjust_contrast(img, params["factor"])
    if idx == 1:
        return F.adjust_brightness(img, params["factor"])
    if idx == 2:
        if params["hue_first"]:
            return F.adjust_saturation(F.adjust_hue(img, params["hue"]), params["saturation"])
        return F.adjust_hue(F.adjust_saturation(img, params["saturation"]), params["hue"])
    if idx == 3:
        return F.horizontal_flip(img)
    if idx == 4:
        return F.vertical_flip(img)
    if idx == 5:
        return F.rgb_to_grayscale(img, num_output_channels=3)
    if idx == 6:
        return F.autocontrast(img)
    if idx == 7:
        return F.equalize(img)
    if idx == 8:
        return F.affine(img, angle=params["angle"], translate=[0, 0], scale=1.0, shear=[0.0, 0.0],
                        interpolation=InterpolationMode.NEAREST, fill=0)
    raise ValueError(f"unknown texture op {idx}")


def texture_transform(texture: Image.Image, resize: int | Sequence[int], imagesize: int | Sequence[int],
                      mean: Sequence[float], std: Sequence[float], rng: np.random.Generator,
                      ops: list[tuple[int, dict]] | None = None) -> torch.Tensor:
    """GLASS ``rand_aug=1`` texture pipeline: Resize(resize) -> 3 ops in drawn order -> CenterCrop -> normalise.

    ``resize`` int = shorter side (PIL bilinear, antialiased), or (H, W). Returns float32 Tensor[3, H, W].
    """
    img = F.resize(texture.convert("RGB"), list(resize) if not isinstance(resize, int) else [resize],
                   interpolation=InterpolationMode.BILINEAR, antialias=True)
    for idx, params in (draw_ops(rng) if ops is None else ops):
        img = apply_op(img, idx, params)
    size = [imagesize, imagesize] if isinstance(imagesize, int) else list(imagesize)
    img = F.center_crop(img, size)
    tensor = F.to_dtype(F.pil_to_tensor(img), torch.float32, scale=True)
    return F.normalize(tensor, mean=list(mean), std=list(std))
