"""Image operations the SLSG simulator needs, re-implemented with numpy/cv2/PIL (the reference used imgaug and
albumentations, which do not install with numpy 2). Every random draw takes an explicit ``np.random.Generator``.

Images are uint8 (H,W,3) arrays; the channel order is whatever the caller uses (the simulator works in BGR as the
reference does).
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from torchvision.transforms import functional as TF

N_TEXTURE_OPS = 10


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr))


def gamma_contrast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``GammaContrast((0.5, 2.0), per_channel=True)``."""
    gammas = rng.uniform(0.5, 2.0, size=3)
    out = 255.0 * np.power(img.astype(np.float64) / 255.0, gammas[None, None, :])
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def brightness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30))`` on the Y of YCrCb."""
    mul, add = rng.uniform(0.8, 1.2), rng.uniform(-30, 30)
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float64)
    ycc[..., 0] = np.clip(ycc[..., 0] * mul + add, 0, 255)
    return cv2.cvtColor(np.round(ycc).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def sharpness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``pillike.EnhanceSharpness()`` (factor U(0, 2))."""
    return np.asarray(ImageEnhance.Sharpness(_pil(img)).enhance(rng.uniform(0.0, 2.0)))


def hue_saturation(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``AddToHueAndSaturation((-50, 50), per_channel=True)``: independent hue and saturation offsets."""
    hue_add, sat_add = rng.integers(-50, 51, size=2)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = np.mod(hsv[..., 0] + int(round(hue_add * 180 / 255)), 180)  # imgaug maps 255 onto OpenCV's 180
    hsv[..., 1] = np.clip(hsv[..., 1] + sat_add, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def solarize(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``Solarize(p=0.5, threshold=(32, 128))``: invert pixels >= threshold, with probability 0.5."""
    apply, threshold = rng.random() < 0.5, rng.uniform(32, 128)
    return np.where(img >= threshold, 255 - img, img).astype(np.uint8) if apply else img


def posterize(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``Posterize()``: keep 1..8 most significant bits."""
    bits = int(rng.integers(1, 9))
    return (img & np.uint8((0xFF << (8 - bits)) & 0xFF)).astype(np.uint8)


def invert(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``Invert()``."""
    return (255 - img).astype(np.uint8)


def autocontrast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``pillike.Autocontrast()`` (cutoff U{0..20} %)."""
    return np.asarray(ImageOps.autocontrast(_pil(img), cutoff=int(rng.integers(0, 21))))


def equalize(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """imgaug ``pillike.Equalize()``."""
    return np.asarray(ImageOps.equalize(_pil(img)))


def rotate(img: np.ndarray, rng: np.random.Generator, max_angle: float = 45.0) -> np.ndarray:
    """imgaug ``Affine(rotate=(-45, 45))``: bilinear, about the centre, constant 0 outside."""
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), -rng.uniform(-max_angle, max_angle), 1.0)
    return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


TEXTURE_OPS = (gamma_contrast, brightness, sharpness, hue_saturation, solarize, posterize, invert, autocontrast,
               equalize, rotate)


def texture_augment(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """3 distinct ops of the 10 (``choice(10, 3, replace=False)``), applied in drawn order. Returns (image, ops)."""
    ops = [int(i) for i in rng.choice(N_TEXTURE_OPS, 3, replace=False)]
    for i in ops:
        img = TEXTURE_OPS[i](img, rng)
    return np.ascontiguousarray(img), ops


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness_: float, saturation: float,
                 hue: float = 0.0) -> np.ndarray:
    """torchvision ``ColorJitter(brightness, saturation=..., hue=...)`` with its random order, drawn from ``rng``."""
    pil = _pil(img)
    ops = []
    if brightness_ > 0:
        ops.append(("b", rng.uniform(max(0.0, 1 - brightness_), 1 + brightness_)))
    if saturation > 0:
        ops.append(("s", rng.uniform(max(0.0, 1 - saturation), 1 + saturation)))
    if hue > 0:
        ops.append(("h", rng.uniform(-hue, hue)))
    for i in rng.permutation(len(ops)):
        kind, value = ops[int(i)]
        if kind == "b":
            pil = TF.adjust_brightness(pil, value)
        elif kind == "s":
            pil = TF.adjust_saturation(pil, value)
        else:
            pil = TF.adjust_hue(pil, value)
    return np.asarray(pil)


def gaussian_blur(img: np.ndarray, radius: float = 2.0) -> np.ndarray:
    """PIL ``GaussianBlur(radius)``."""
    return np.asarray(_pil(img).filter(ImageFilter.GaussianBlur(radius)))


def grid_shuffle(img: np.ndarray, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """albumentations ``RandomGridShuffle((rows, cols))``: ``linspace`` tile borders; tiles of equal shape permuted."""
    h, w = img.shape[:2]
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    tiles = [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(rows) for j in range(cols)]
    out = img.copy()
    by_shape: dict[tuple[int, int], list[int]] = {}
    for k, (y0, y1, x0, x1) in enumerate(tiles):
        by_shape.setdefault((y1 - y0, x1 - x0), []).append(k)
    for members in by_shape.values():
        perm = rng.permutation(len(members))
        for dst, src in zip(members, perm):
            y0, y1, x0, x1 = tiles[dst]
            sy0, sy1, sx0, sx1 = tiles[members[int(src)]]
            out[y0:y1, x0:x1] = img[sy0:sy1, sx0:sx1]
    return out
