"""Generated images with known foregrounds, for the foreground-mask tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


def _texture(name: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    import skimage.data

    src = getattr(skimage.data, name)().astype(np.float32)
    if src.ndim == 3:
        src = src[..., :3].mean(axis=2)
    y, x = rng.integers(0, src.shape[0] - h + 1), rng.integers(0, src.shape[1] - w + 1)
    return src[y:y + h, x:x + w]


def object_image(shape: str, h: int, w: int, rng: np.random.Generator, dark_object: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A textured object (``ellipse``, ``ring`` = washer with a hole filled as foreground, ``polygon``) on a smooth,
    unevenly lit, noisy background; returns (uint8 RGB, true mask bool). Position, size, angle vary per image."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * h, w / 2 + rng.uniform(-0.1, 0.1) * w
    a, b = rng.uniform(0.22, 0.32) * h, rng.uniform(0.18, 0.28) * w
    angle = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    if shape == "ellipse":
        mask = (u / a) ** 2 + (v / b) ** 2 <= 1
    elif shape == "ring":  # outer disc; the hole shows background but a filled ring is the object's foreground
        mask = (u / a) ** 2 + (v / a) ** 2 <= 1
    elif shape == "polygon":
        mask = (np.abs(u) <= a) & (np.abs(v) <= b * 0.6) | (np.abs(u) <= a * 0.4) & (np.abs(v) <= b)
    else:
        raise ValueError(shape)
    light = 1 + 0.15 * (xx / w - 0.5) + 0.1 * (yy / h - 0.5)
    background = (200 if not dark_object else 60) * light + rng.normal(0, 4, (h, w))
    obj = _texture("camera", h, w, rng) * 0.35 + (40 if not dark_object else 150)
    image = np.where(mask, obj, background)
    if shape == "ring":
        hole = (u / (0.35 * a)) ** 2 + (v / (0.35 * a)) ** 2 <= 1
        image = np.where(hole, background, image)
    tint = np.array([1.0, 0.95, 0.9], np.float32)
    rgb = np.clip(image[..., None] * tint, 0, 255).astype(np.uint8)
    return rgb, mask


def texture_image(name: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    gray = _texture(name, h, w, rng)
    return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def write_fg_tree(root: Path, n: int = 6, h: int = 120, w: int = 160, seed: int = 0, with_test: bool = True
                  ) -> dict[str, list[np.ndarray]]:
    """MVTec layout ``root/<class>/train/good/NNN.png`` (+ ``test/good/000.png`` with ``with_test``) for object classes
    ``ellipse``, ``ring``, ``polygon_dark`` and texture classes ``brick``, ``grass``; returns the true masks."""
    rng = np.random.default_rng(seed)
    truth: dict[str, list[np.ndarray]] = {}
    for cls in ("ellipse", "ring", "polygon_dark", "brick", "grass"):
        folder = root / cls / "train" / "good"
        folder.mkdir(parents=True, exist_ok=True)
        truth[cls] = []
        for i in range(n):
            if cls in ("brick", "grass"):
                rgb, mask = texture_image(cls, h, w, rng), np.ones((h, w), bool)
            else:
                rgb, mask = object_image(cls.split("_")[0], h, w, rng, dark_object=cls.endswith("dark"))
            Image.fromarray(rgb).save(folder / f"{i:03d}.png")
            truth[cls].append(ndimage.binary_fill_holes(mask))
        if with_test:
            (root / cls / "test" / "good").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(root / cls / "test" / "good" / "000.png")
    return truth
