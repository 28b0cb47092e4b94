"""Image and mask preprocessing, reproducing the reference pipelines exactly.

GLASS: torchvision ``Resize(resize)`` on the PIL image (an int resizes the shorter side, PIL bilinear with its built-in
antialiasing, uint8 output) -> ``CenterCrop(imagesize)`` -> ``ToTensor`` -> ``Normalize(mean, std)``; masks the same
without normalisation. SLSG: an exact 256 x 256 LANCZOS resize (aspect not kept). Both are one ``Preprocessing``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from common.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
GT_RULES = ("half", "glass", "nonzero")
# GLASS's MVTec loader resizes these classes to round(imagesize * 329 / 288) before the crop (not in judge mode).
GLASS_LARGE_RESIZE_CLASSES = ("toothbrush", "wood")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int] | int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
        return int(value)
    try:
        pair = tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise UserError(f"--{name} must be an integer or a (height, width) pair, got {value!r}") from exc
    if len(pair) != 2 or min(pair) <= 0:
        raise UserError(f"--{name} must be a positive integer or a (height, width) pair, got {value!r}")
    return pair


@dataclass(frozen=True)
class Preprocessing:
    """What a method feeds its network, and how ground truth is brought to the same pixel grid.

    resize: int = the shorter side becomes ``resize`` (the longer ``int(resize * long / short)``, as torchvision);
        (H, W) = an exact resize. ``square=True`` turns an int into (resize, resize) (GLASS judge mode, SLSG).
    imagesize: centre-crop size, int (square) or (H, W); zero padding if the resized image is smaller (torchvision).
    keep_aspect: ignore ``resize``; scale the image to fit inside ``imagesize`` keeping its aspect ratio and pad the
        rest with zeros (black), centred, so nothing is cropped (``--keep_aspect 1``).
    mean, std: per-channel normalisation of the [0, 1] image.
    interpolation: image filter (``bilinear`` GLASS, ``lanczos`` SLSG); masks are always resized bilinearly.
    """

    resize: int | tuple[int, int]
    imagesize: int | tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    square: bool = False
    keep_aspect: bool = False

    def __post_init__(self) -> None:
        resize = _pair(self.resize, "resize")
        if self.square and isinstance(resize, int):
            resize = (resize, resize)
        object.__setattr__(self, "resize", resize)
        object.__setattr__(self, "imagesize", _pair(self.imagesize, "imagesize"))
        object.__setattr__(self, "square", bool(self.square))
        object.__setattr__(self, "keep_aspect", bool(self.keep_aspect))
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3:
                raise UserError(f"normalisation {name} needs 3 values, got {values}")
            object.__setattr__(self, name, values)
        if any(s == 0 for s in self.std):
            raise UserError(f"normalisation std must be non-zero, got {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise UserError(f"unknown interpolation {self.interpolation!r}; choose from {', '.join(INTERPOLATIONS)}")

    @property
    def output_shape(self) -> tuple[int, int]:
        """(H, W) of every preprocessed image and mask."""
        size = self.imagesize
        return (size, size) if isinstance(size, int) else size

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) after the resize step for an input of ``width`` x ``height``."""
        if self.keep_aspect:
            out_h, out_w = self.output_shape
            scale = min(out_w / width, out_h / height)
            return max(1, min(out_w, round(width * scale))), max(1, min(out_h, round(height * scale)))
        if not isinstance(self.resize, int):
            return self.resize[1], self.resize[0]
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if width <= height else (new_long, self.resize)

    def _geometry(self, pil: Image.Image, resample: Image.Resampling) -> Image.Image:
        size = self.resized_size(*pil.size)
        if size != pil.size:
            pil = pil.resize(size, resample)
        return _center_crop(pil, self.output_shape)

    def image(self, pil: Image.Image) -> torch.Tensor:
        """PIL image (any mode; converted to RGB) -> normalised float32 Tensor[3, H, W]."""
        if pil.mode != "RGB":
            pil = pil.convert("RGB")
        pil = self._geometry(pil, INTERPOLATIONS[self.interpolation])
        tensor = torch.from_numpy(np.array(pil, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        tensor = tensor.to(torch.float32).div(255)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return tensor.sub(mean).div(std)

    def image_uint8(self, pil: Image.Image) -> np.ndarray:
        """The resized and cropped image before normalisation: uint8 array (H, W, 3)."""
        return np.array(self._geometry(pil.convert("RGB"), INTERPOLATIONS[self.interpolation]), dtype=np.uint8)

    def mask(self, pil: Image.Image) -> torch.Tensor:
        """Mask ("L" 0..255 or "F" float) -> float32 Tensor[1, H, W] in [0, 1]: bilinear resize + the same crop, no
        binarisation (see ``binarize_gt``)."""
        if pil.mode not in ("L", "F"):
            pil = pil.convert("L")
        pil = self._geometry(pil, Image.Resampling.BILINEAR)
        if pil.mode == "F":
            array = np.array(pil, dtype=np.float32)
            return torch.from_numpy(array)[None]
        return torch.from_numpy(np.array(pil, dtype=np.uint8))[None].to(torch.float32).div(255)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored with checkpoints; ``from_dict`` restores it)."""
        data = asdict(self)
        for key in ("resize", "imagesize", "mean", "std"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        if not isinstance(data, dict):
            raise UserError(f"stored preprocessing is not a mapping: {data!r}")
        known = {"resize", "imagesize", "mean", "std", "interpolation", "square", "keep_aspect"}
        missing = {"resize", "imagesize"} - set(data)
        if missing:
            raise UserError(f"stored preprocessing lacks {', '.join(sorted(missing))}: {data!r}")
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("resize", "imagesize"):
            if isinstance(kwargs[key], list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def _center_crop(pil: Image.Image, shape: tuple[int, int]) -> Image.Image:
    """torchvision ``CenterCrop``: offsets ``int(round((size - crop) / 2))``; zero padding when the crop is larger."""
    crop_h, crop_w = shape
    width, height = pil.size
    if crop_w > width or crop_h > height:
        left, top = (crop_w - width) // 2 if crop_w > width else 0, (crop_h - height) // 2 if crop_h > height else 0
        padded = Image.new(pil.mode, (max(width, crop_w), max(height, crop_h)), 0)
        padded.paste(pil, (left, top))
        pil, (width, height) = padded, padded.size
    if (width, height) == (crop_w, crop_h):
        return pil
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return pil.crop((left, top, left + crop_w, top + crop_h))


def glass_preprocessing(cls: str, resize: int, imagesize: int, mean: Sequence[float] = IMAGENET_MEAN,
                        std: Sequence[float] = IMAGENET_STD, distribution: int = 0, keep_aspect: bool = False
                        ) -> Preprocessing:
    """The reference GLASS transform for one class.

    ``distribution == 1`` (judge mode, train set only in the reference): exact ``resize x resize``, no class rule.
    Otherwise the shorter side goes to ``resize``, except for toothbrush and wood, which go to
    ``round(imagesize * 329 / 288)`` (329 at 288; the reference derives it from ``imagesize``, not ``resize``).
    ``keep_aspect``: fit inside ``imagesize`` and pad instead (no class rule, nothing cropped)."""
    if keep_aspect:
        return Preprocessing(imagesize, imagesize, tuple(mean), tuple(std), "bilinear", keep_aspect=True)
    if distribution == 1:
        return Preprocessing(resize, imagesize, tuple(mean), tuple(std), "bilinear", square=True)
    if cls in GLASS_LARGE_RESIZE_CLASSES:
        side = imagesize if isinstance(imagesize, int) else imagesize[0]
        resize = round(side * 329 / 288)
    return Preprocessing(resize, imagesize, tuple(mean), tuple(std), "bilinear")


def slsg_preprocessing(size: int = 256, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD, keep_aspect: bool = False) -> Preprocessing:
    """The SLSG transform: squash to ``size x size`` with PIL LANCZOS (aspect not kept), no crop; ``keep_aspect``:
    fit inside ``size x size`` and pad instead."""
    return Preprocessing(size, size, tuple(mean), tuple(std), "lanczos", square=True, keep_aspect=keep_aspect)


def binarize_gt(mask: torch.Tensor, rule: str = "half") -> torch.Tensor:
    """Resized ground truth (values in [0, 1]) -> float32 {0, 1}, same shape.

    ``half``: >= 0.5 (toolkit default, every layout); ``glass``: == 1.0 (GLASS on MVTec-layout data: only fully
    covered pixels count); ``nonzero``: > 0 (GLASS on VisA)."""
    if rule == "half":
        out = mask >= 0.5
    elif rule == "glass":
        out = mask == 1.0
    elif rule == "nonzero":
        out = mask > 0
    else:
        raise UserError(f"--gt_rule: unknown rule {rule!r}; choose from {', '.join(GT_RULES)}")
    return out.to(torch.float32)
