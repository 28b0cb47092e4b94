"""The "line" demo products: one product per class, photographed as on an inspection line.

Every image of a class shows the SAME part (one coin design, one tile decor, one flange, one label) with the normal
variation of a production line: a small shift and rotation (pose), a global gain and a gentle illumination gradient
(lighting), sensor noise. The surfaces are real scikit-image photos and textures (CC0 / public domain), warped into
place with one affine pose per image.

``render(name, size, rng) -> Scene``: the clean float32 RGB image in [0, 255], the region where defects may lie
(object alpha in [0, 1], or ones for full-frame parts), the background a missing piece reveals, and the foreground
mask (uint8 0/255) written to ``fg_mask/``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

from datasets.demodata.sources import coins, smooth_noise

PRODUCTS = ("coin", "tile", "flange", "label")
MAX_SHIFT = 0.03      # of the image side
MAX_ROTATION = 6.0    # degrees
GAIN = (0.92, 1.08)
NOISE_SIGMA = 1.5     # grey levels


@dataclass(frozen=True)
class Scene:
    image: np.ndarray        # (H, W, 3) float32 in [0, 255]
    region: np.ndarray       # (H, W) float32 in [0, 1]: where defects may be drawn
    background: np.ndarray   # (H, W, 3) float32: what shows through a missing piece
    fg: np.ndarray           # (H, W) uint8 0/255


@dataclass(frozen=True)
class Pose:
    dy: float
    dx: float
    angle: float  # degrees

    @classmethod
    def draw(cls, size: int, rng: np.random.Generator) -> "Pose":
        s = MAX_SHIFT * size
        return cls(float(rng.uniform(-s, s)), float(rng.uniform(-s, s)),
                   float(rng.uniform(-MAX_ROTATION, MAX_ROTATION)))


def _warp(source: np.ndarray, size: int, pose: Pose, scale: float, border=cv2.BORDER_REFLECT) -> np.ndarray:
    """``source`` (centred) scaled by ``scale``, rotated and shifted by ``pose`` into a size x size frame."""
    h, w = source.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), pose.angle, scale)
    matrix[0, 2] += (size - 1) / 2 + pose.dx - (w - 1) / 2
    matrix[1, 2] += (size - 1) / 2 + pose.dy - (h - 1) / 2
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(source, matrix, (size, size), flags=interp, borderMode=border, borderValue=0)


def _lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global gain and a weak linear illumination gradient (+-4 %) in a random direction."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phi = rng.uniform(0, 2 * math.pi)
    ramp = ((xx / w - 0.5) * math.cos(phi) + (yy / h - 0.5) * math.sin(phi)) * rng.uniform(0, 0.08)
    return image * (rng.uniform(*GAIN) * (1 + ramp))[..., None]


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = image + rng.normal(0, NOISE_SIGMA, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.float32)


def _belt(size: int, rng: np.random.Generator) -> np.ndarray:
    """Dark-grey conveyor belt: fixed fine cross-weave plus a little low-frequency unevenness."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    weave = 3.0 * np.sin(xx * 1.3) * np.sin(yy * 1.3)
    base = 52.0 + weave + 3.0 * smooth_noise(size, size, 2, rng)
    return base[..., None] * np.array([0.95, 1.0, 1.05], np.float32)


# --- coin: one stamped coin design on the belt -----------------------------------------------------------------

COIN_INDEX = 12  # the largest, sharpest coin of skimage.data.coins()


def _coin(size: int, rng: np.random.Generator) -> Scene:
    coin = coins()[COIN_INDEX]
    pose = Pose.draw(size, rng)
    scale = 0.62 * size / coin.diameter
    gray = _warp(coin.gray, size, pose, scale, cv2.BORDER_REPLICATE)
    alpha = np.clip(_warp(coin.alpha, size, pose, scale, cv2.BORDER_CONSTANT), 0, 1)
    metal = gray[..., None] * np.array([1.0, 0.88, 0.66], np.float32) * 1.1 + 10
    belt = _belt(size, rng)
    lit = _lighting(belt * (1 - alpha[..., None]) + metal * alpha[..., None], rng)
    gain = lit.mean() / max(float((belt * (1 - alpha[..., None]) + metal * alpha[..., None]).mean()), 1e-6)
    return Scene(_finish(lit, rng), alpha, belt * gain, ((alpha > 0.5) * 255).astype(np.uint8))


# --- tile: one decor of a brick-textured ceramic tile, full frame ------------------------------------------------

@lru_cache(maxsize=1)
def _brick() -> np.ndarray:
    import skimage.data

    gray = skimage.data.brick().astype(np.float32)
    return np.ascontiguousarray(gray[96:416, 96:416])  # a fixed 320 px patch: the decor


def _tile(size: int, rng: np.random.Generator) -> Scene:
    pose = Pose.draw(size, rng)
    source = _brick()
    gray = _warp(source, size, Pose(pose.dy, pose.dx, pose.angle / 3), 1.1 * size / source.shape[0])
    image = _lighting(gray[..., None] * np.array([1.0, 0.8, 0.66], np.float32) + 20, rng)
    ones = np.ones((size, size), np.float32)
    return Scene(_finish(image, rng), ones, image, np.full((size, size), 255, np.uint8))


# --- flange: a machined ring with four bolt holes, sand-blasted metal ------------------------------------------

@lru_cache(maxsize=1)
def _blasted_metal() -> np.ndarray:
    """Sand-blasted metal surface: the gravel texture, contrast-reduced around a light grey."""
    import skimage.data

    gravel = skimage.data.gravel().astype(np.float32)
    gravel = ndimage.gaussian_filter(gravel, 1.0)
    return 150.0 + 0.35 * (gravel - gravel.mean())


def _flange_alpha(size: int, pose: Pose, ss: int = 4) -> np.ndarray:
    """Anti-aliased alpha of the ring (outer radius 0.40, bore 0.15, four bolt holes 0.05 at 0.28 of the side)."""
    n = size * ss
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / ss - 0.5
    cy, cx = (size - 1) / 2 + pose.dy, (size - 1) / 2 + pose.dx
    y, x = yy - cy, xx - cx
    r = np.hypot(y, x)
    solid = (r <= 0.40 * size) & (r >= 0.15 * size)
    for k in range(4):
        a = math.radians(pose.angle) + k * math.pi / 2 + math.pi / 4
        by, bx = 0.28 * size * math.sin(a), 0.28 * size * math.cos(a)
        solid &= np.hypot(y - by, x - bx) > 0.05 * size
    return cv2.resize(solid.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def _flange(size: int, rng: np.random.Generator) -> Scene:
    pose = Pose.draw(size, rng)
    alpha = _flange_alpha(size, pose)
    surface = _warp(_blasted_metal(), size, pose, 0.5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(yy - (size - 1) / 2 - pose.dy, xx - (size - 1) / 2 - pose.dx)
    turning = 5.0 * np.sin(r * 2.2)                           # concentric turning marks
    bevel = 25.0 * np.exp(-((r - 0.40 * size) / 1.5) ** 2)    # lit outer chamfer
    metal = (surface + turning + bevel)[..., None] * np.array([0.95, 0.98, 1.04], np.float32)
    belt = _belt(size, rng)
    plain = belt * (1 - alpha[..., None]) + metal * alpha[..., None]
    lit = _lighting(plain, rng)
    gain = lit.mean() / max(float(plain.mean()), 1e-6)
    return Scene(_finish(lit, rng), alpha, belt * gain, ((alpha > 0.5) * 255).astype(np.uint8))


# --- label: a printed label (logo band and text) on a cardboard box ----------------------------------------------

@lru_cache(maxsize=2)
def _label_art(side: int) -> np.ndarray:
    """The label's print at ``side`` px: a blue band with the scikit-image logo over a crop of the text page."""
    import skimage.data

    page = skimage.data.page().astype(np.float32)
    flat = page / np.maximum(ndimage.gaussian_filter(page, 12), 1.0)  # remove the scan's uneven lighting
    ink = np.clip((1.0 - flat) * 2.2, 0, 1)[0:150, 0:190]
    band_h = side // 4
    ink = cv2.resize(ink, (side, side - band_h), interpolation=cv2.INTER_AREA)
    paper = np.array([236, 232, 220], np.float32)
    art = np.empty((side, side, 3), np.float32)
    art[band_h:] = paper - ink[..., None] * (paper - np.array([30, 30, 40], np.float32))
    art[:band_h] = np.array([40, 80, 150], np.float32)
    logo = skimage.data.logo().astype(np.float32)
    lh = band_h - 4
    logo = cv2.resize(logo, (lh, lh), interpolation=cv2.INTER_AREA)
    a = logo[..., 3:] / 255.0
    x0 = 4
    art[2:2 + lh, x0:x0 + lh] = art[2:2 + lh, x0:x0 + lh] * (1 - a) + logo[..., :3] * a
    stripe = np.array([230, 200, 60], np.float32)
    art[band_h // 3:band_h // 3 + max(2, band_h // 6), lh + 10:side - 6] = stripe
    return art


@lru_cache(maxsize=2)
def _cardboard(size: int) -> np.ndarray:
    import skimage.data

    grass = skimage.data.grass().astype(np.float32)[:size * 2, :size * 2]
    fibre = cv2.resize(ndimage.gaussian_filter(grass, 2.0), (size, size), interpolation=cv2.INTER_AREA)
    return (150.0 + 0.15 * (fibre - fibre.mean()))[..., None] * np.array([1.0, 0.8, 0.58], np.float32)


def _label(size: int, rng: np.random.Generator) -> Scene:
    pose = Pose.draw(size, rng)
    side = int(round(0.78 * size))
    art = _label_art(side)
    ones = np.ones((side, side), np.float32)
    warped = np.stack([_warp(art[..., c], size, pose, 1.0, cv2.BORDER_CONSTANT) for c in range(3)], axis=-1)
    alpha = np.clip(_warp(ones, size, pose, 1.0, cv2.BORDER_CONSTANT), 0, 1)
    box = _cardboard(size)
    plain = box * (1 - alpha[..., None]) + warped
    lit = _lighting(plain, rng)
    gain = lit.mean() / max(float(plain.mean()), 1e-6)
    return Scene(_finish(lit, rng), alpha, box * gain, ((alpha > 0.5) * 255).astype(np.uint8))


_RENDER = {"coin": _coin, "tile": _tile, "flange": _flange, "label": _label}


def render(name: str, size: int, rng: np.random.Generator) -> Scene:
    return _RENDER[name](size, rng)
