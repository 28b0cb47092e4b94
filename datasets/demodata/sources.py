"""Real source images bundled with scikit-image (CC0 / public domain) and procedural textures.

All arrays are float32 RGB in [0, 255], shape (H, W, 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

from datasets.synthesis.perlin import perlin_noise

TEXTURE_CLASSES = ("brick", "gravel", "grass")
# Mild tints so that the gray CC0 textures become plausible colour images and colour stains mean something.
TINTS = {"brick": (1.0, 0.8, 0.68), "gravel": (0.96, 0.93, 0.86), "grass": (0.78, 1.0, 0.62)}
COIN_TINT = (1.0, 0.9, 0.72)
PLATE_TINT = (0.82, 0.88, 1.0)


def _tint(gray: np.ndarray, tint) -> np.ndarray:
    return gray.astype(np.float32)[..., None] * np.asarray(tint, np.float32)


@lru_cache(maxsize=None)
def texture_source(name: str) -> np.ndarray:
    """A 512x512 tinted skimage texture (brick, gravel, grass)."""
    import skimage.data

    return _tint(getattr(skimage.data, name)(), TINTS[name])


def crop_texture(source: np.ndarray, half: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random square crop from the top ('top', train) or bottom ('bottom', test) half, resized to size x size,
    randomly flipped. Returns float32 (size, size, 3)."""
    h = source.shape[0] // 2
    rows = source[:h] if half == "top" else source[h:]
    side = int(rng.integers(int(0.7 * h), h + 1))
    y = int(rng.integers(0, rows.shape[0] - side + 1))
    x = int(rng.integers(0, rows.shape[1] - side + 1))
    crop = rows[y:y + side, x:x + side]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return np.ascontiguousarray(crop, dtype=np.float32)


@dataclass(frozen=True)
class Coin:
    gray: np.ndarray   # (h, w) float32 crop of the coins photo
    alpha: np.ndarray  # (h, w) float32 soft segmentation in [0, 1]
    diameter: float


@lru_cache(maxsize=1)
def coins() -> tuple[Coin, ...]:
    """The 24 coins of ``skimage.data.coins()`` segmented by watershed (labels in raster order of their first
    pixel)."""
    import skimage.data
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    img = skimage.data.coins()
    markers = np.zeros_like(img)
    markers[img < 30] = 1
    markers[img > 150] = 2
    seg = ndimage.binary_fill_holes(watershed(sobel(img), markers) == 2)
    labels, n = ndimage.label(seg)
    out = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[sl] == k
        if mask.sum() < 100:
            continue
        pad = 6
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, img.shape[0])
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, img.shape[1])
        hard = (labels[y0:y1, x0:x1] == k).astype(np.float32)
        alpha = np.clip(ndimage.gaussian_filter(hard, 0.7) * 1.6 - 0.3, 0, 1)
        out.append(Coin(img[y0:y1, x0:x1].astype(np.float32), alpha.astype(np.float32),
                        float(max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start))))
    return tuple(out)


def smooth_noise(h: int, w: int, scale: int, rng: np.random.Generator) -> np.ndarray:
    """Perlin noise of any size (computed on a padded multiple of ``scale``, then cropped)."""
    hp, wp = -(-h // scale) * scale, -(-w // scale) * scale
    return perlin_noise((hp, wp), (scale, scale), rng)[:h, :w].astype(np.float32)


def plate(h: int, w: int, rng: np.random.Generator, level: float = 58.0) -> np.ndarray:
    """A dark, slightly uneven inspection plate (background of the object class)."""
    base = level + 8.0 * smooth_noise(h, w, 2, rng) + 1.5 * smooth_noise(h, w, 16, rng)
    return _tint(base, PLATE_TINT)


def place_coin(coin: Coin, h: int, w: int, centre: tuple[float, float], scale: float, angle: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Coin rendered into an (h, w) frame: (RGB float32 (h, w, 3), alpha float32 (h, w))."""
    ch, cw = coin.gray.shape
    matrix = cv2.getRotationMatrix2D(((cw - 1) / 2, (ch - 1) / 2), angle, scale)
    matrix[0, 2] += centre[1] - (cw - 1) / 2
    matrix[1, 2] += centre[0] - (ch - 1) / 2
    gray = cv2.warpAffine(coin.gray, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(coin.alpha, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    return _tint(gray, COIN_TINT), np.clip(alpha, 0, 1)


def rust_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural multi-octave 'rust/dirt' texture, used only for contamination defects (held out of dtd/)."""
    field = sum(smooth_noise(h, w, s, rng) / (i + 1) for i, s in enumerate((2, 4, 8, 16)))
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    dark = np.array([45, 28, 18], np.float32) * rng.uniform(0.8, 1.2)
    bright = np.array([190, 100, 40], np.float32) * rng.uniform(0.8, 1.1)
    return dark + field[..., None] * (bright - dark)


# --- DTD-like folder -------------------------------------------------------------------------------------------

def _photo_crops(name: str, n: int, side: int, rng: np.random.Generator) -> list[np.ndarray]:
    import skimage.data

    img = getattr(skimage.data, name)()
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    if name == "retina":  # keep the fundus, not the black border
        q = img.shape[0] // 4
        img = img[q:3 * q, q:3 * q]
    crops = []
    for _ in range(n):
        s = min(side, img.shape[0], img.shape[1])
        y = int(rng.integers(0, img.shape[0] - s + 1))
        x = int(rng.integers(0, img.shape[1] - s + 1))
        crops.append(img[y:y + s, x:x + s].astype(np.float32))
    return crops


def _marbled(side: int, rng: np.random.Generator) -> np.ndarray:
    turb = sum(np.abs(smooth_noise(side, side, s, rng)) / (i + 1) for i, s in enumerate((2, 4, 8)))
    x = np.linspace(0, rng.uniform(3, 7) * np.pi, side, dtype=np.float32)[None, :]
    v = 0.5 + 0.5 * np.sin(x + 6.0 * turb)
    c0, c1 = rng.uniform(20, 90, 3), rng.uniform(150, 240, 3)
    return (c0 + v[..., None] * (c1 - c0)).astype(np.float32)


def _banded(side: int, rng: np.random.Generator) -> np.ndarray:
    y = np.arange(side, dtype=np.float32)[:, None] * rng.uniform(0.08, 0.2)
    v = (np.sin(y + 1.5 * smooth_noise(side, side, 4, rng)) > 0).astype(np.float32)
    v = ndimage.gaussian_filter(v, 1.0)
    c0, c1 = rng.uniform(0, 120, 3), rng.uniform(130, 255, 3)
    return (c0 + v[..., None] * (c1 - c0)).astype(np.float32)


def _blotchy(side: int, rng: np.random.Generator) -> np.ndarray:
    v = (smooth_noise(side, side, 8, rng) > 0.15).astype(np.float32)
    v = ndimage.gaussian_filter(v, 1.5)
    c0, c1 = rng.uniform(100, 230, 3), rng.uniform(10, 90, 3)
    return (c0 + v[..., None] * (c1 - c0)).astype(np.float32)


# category -> (skimage photo name or None, procedural generator or None)
DTD_CATEGORIES = {
    "bubbly": "coffee",
    "fibrous": "chelsea",
    "sprinkled": "hubble_deep_field",
    "stained": "immunohistochemistry",
    "veined": "retina",
    "marbled": _marbled,
    "banded": _banded,
    "blotchy": _blotchy,
}


def dtd_images(per_category: int, side: int, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """DTD stand-in: {category: [RGB float32 (side, side, 3), ...]}."""
    out = {}
    for cat, src in DTD_CATEGORIES.items():
        if isinstance(src, str):
            out[cat] = _photo_crops(src, per_category, side, rng)
        else:
            out[cat] = [src(side, rng) for _ in range(per_category)]
    return out
