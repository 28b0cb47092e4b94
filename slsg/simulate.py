"""SLSG simulated anomalies (the reference ``CutPastePlus2``): texture blending and the "logical" SCAR branch.

Category rules follow the reference for the five MVTec LOCO classes; every other class (any dataset) uses the
generic rule: SCAR source = the image's own 4x8 grid shuffle (after an optional 180-degree rotation and a colour
jitter with p = 0.2), no foreground step, default transparencies. Work is in BGR like the reference, so "channel 0"
thresholds read the blue channel. Sizes other than 256 scale the fixed pixel coordinates and minimum areas.

Everything random comes from the ``np.random.Generator`` passed in, so a (seed, step, index) generator gives the
same sample whatever the worker layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from datasets.synthesis.perlin import perlin_threshold_map
from slsg import imageops as ops

LOCO_CLASSES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
SCAR_CUT = 0.35
MIN_AREA = 49  # pixels at 256 x 256 (pushpins: 64)
MIN_AREA_PUSHPINS = 64
MAX_FG_TRIES = 16


@dataclass
class Simulated:
    """One simulated anomaly: ``aug`` uint8 (H,W,3) RGB, ``mask`` float32 (H,W) {0,1}, plus what was drawn."""

    aug: np.ndarray
    mask: np.ndarray
    branch: str  # "scar" | "texture"
    beta: float
    info: dict = field(default_factory=dict)


def _scar_source(img: np.ndarray, category: str, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The self-rearranged source image, uint8 BGR (H,W,3). ``img`` is the jittered normal, uint8 BGR."""
    src = img
    if rng.random() < 0.5:
        src = cv2.flip(src, -1)
    strong = rng.random() > 0.3
    jitter = (0.4, 0.4, 0.2) if strong and category != "juice_bottle" else (0.2, 0.2, 0.1)
    if category not in ("splicing_connectors", "juice_bottle", "breakfast_box"):
        f = rng.random()
        if f > 0.8 or (category == "pushpins" and f > 0.3):
            src = ops.color_jitter(src, rng, *jitter)
        elif category == "screw_bag":
            src = ops.color_jitter(src, rng, 0.7, 0.7, 0.45)
        if rng.random() < 0.2:
            src = ops.gaussian_blur(src, 2.0)
    other = (lambda: others[int(rng.integers(len(others)))]) if others else (lambda: img)
    f = rng.random()
    if category == "juice_bottle":
        return ops.grid_shuffle(src, 3, 3, rng) if f > 0.75 else cv2.flip(src, 0) if f < 0.333 else other()
    if category == "breakfast_box":
        return ops.grid_shuffle(src, 3, 2, rng) if f > 0.666 else cv2.flip(src, 0) if f < 0.333 else cv2.flip(src, 1)
    if category == "pushpins":
        return ops.grid_shuffle(src, 3, 5, rng) if f > 0.75 else cv2.flip(src, 0) if f < 0.333 else other()
    if category == "screw_bag":
        if f > 0.75:
            return ops.grid_shuffle(src, 4, 4, rng)
        if f < 0.25:
            return cv2.flip(src, 0 if rng.random() < 0.5 else 1)
        return ops.grid_shuffle(other(), 4, 4, rng)
    if category == "splicing_connectors":
        h = src.shape[0]
        q = h // 4
        if f > 0.3:
            base = other().copy()
            if rng.random() < 0.75:
                base[0:q], base[3 * q:4 * q] = base[q:2 * q].copy(), base[2 * q:3 * q].copy()
                return ops.grid_shuffle(base, 1, 4, rng)
            return base
        base = src.copy()
        if rng.random() < 0.8:
            base[0:q], base[3 * q:4 * q] = base[q:2 * q].copy(), base[2 * q:3 * q].copy()
        return ops.grid_shuffle(base, 2, 4, rng)
    return ops.grid_shuffle(src, 4, 8, rng)


def _scaled_kernel(rows: int, cols: int, scale: float) -> np.ndarray:
    return np.ones((max(1, round(rows * scale)), max(1, round(cols * scale))), np.uint8)


class SLSGSimulator:
    """``__call__(img_rgb uint8 (H,W,3), rng) -> Simulated``; H = W, a multiple of 8.

    textures: a list of texture file paths (DTD ``images/*/*``), or None (SCAR only); others: the class's
    pre-loaded training images (uint8 RGB, same size). ``beta_fix``: apply the intended per-branch transparency for
    breakfast_box instead of the reference's always-U(0, 0.7) bug.
    """

    def __init__(self, category: str, textures: list[str] | None, others: list[np.ndarray],
                 beta_fix: bool = False) -> None:
        self.category = category if category in LOCO_CLASSES else "generic"
        self.textures = list(textures or [])
        self.others = [np.ascontiguousarray(o[..., ::-1]) for o in others]  # BGR, as the reference reads them
        self.beta_fix = beta_fix
        self._texture_cache: dict[tuple[str, int], np.ndarray] = {}

    def _texture(self, path: str, size: int) -> np.ndarray:
        key = (path, size)
        if key not in self._texture_cache:
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                from common.errors import UserError

                raise UserError(f"--augpath: cannot read texture image {path}")
            self._texture_cache[key] = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        return self._texture_cache[key]

    def _beta(self, scar: bool, rng: np.random.Generator) -> float:
        cat = self.category
        if cat == "juice_bottle":
            return 0.0
        if cat == "breakfast_box" and not self.beta_fix:
            return float(rng.uniform(0.0, 0.7))  # reference bug: ``~scar`` on an int is always truthy
        if scar:
            return 0.0 if cat in ("splicing_connectors", "pushpins") else float(rng.uniform(0.0, 0.25))
        if cat == "pushpins":
            return float(rng.uniform(0.0, 0.4))
        return 0.75 if rng.random() < 0.25 else float(rng.uniform(0.0, 0.9))

    def _mask(self, img: np.ndarray, src: np.ndarray, scar: bool, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Perlin mask + the category's foreground step, redrawn until large enough. Returns (mask, draws)."""
        size = img.shape[0]
        scale = size / 256.0
        cat = self.category
        min_area = (MIN_AREA_PUSHPINS if cat == "pushpins" else MIN_AREA) * scale * scale
        tries = 0
        draws = 0
        while True:
            draws += 1
            mask = perlin_threshold_map((size, size), rng, 0, 3 if scar else 4, 0.4 if scar else 0.5, 90.0)
            if cat == "pushpins" and scar and rng.random() < 0.75 and tries < MAX_FG_TRIES:
                threshold = max(2, 36 - tries // 3)
                fg = cv2.dilate((src[..., 0] > threshold).astype(np.uint8), _scaled_kernel(5, 5, scale))
                mask = mask * fg
                tries += 1
            elif cat == "splicing_connectors" and scar and rng.random() < 0.2 and tries < MAX_FG_TRIES:
                fg = cv2.erode((src[..., 0] > 20).astype(np.uint8), _scaled_kernel(6, 13, scale))
                mask = cv2.dilate(fg, _scaled_kernel(9, 15, scale)).astype(np.float32)
                tries += 1
            if cat == "juice_bottle":
                fg = cv2.erode((img[..., 0] > 8).astype(np.uint8), _scaled_kernel(15, 15, scale))
                mask = mask * cv2.dilate(fg, _scaled_kernel(3, 3, scale))
                mask[:, round(201 * scale):] = 0
                mask[round(240 * scale):, :] = 0
            if cat == "breakfast_box" and rng.random() < 0.2:
                lo, hi = round(140 * scale), round(205 * scale)
                mask[lo:hi, lo:hi] = 1
            mask = mask.astype(np.float32)
            if mask.sum() >= min_area:
                return mask, draws

    def __call__(self, img_rgb: np.ndarray, rng: np.random.Generator) -> Simulated:
        size = img_rgb.shape[0]
        if img_rgb.shape[:2] != (size, size) or size % 8:
            raise ValueError(f"SLSG simulation needs a square image whose side is a multiple of 8, got "
                             f"{img_rgb.shape[:2]}")
        img = np.ascontiguousarray(img_rgb[..., ::-1])  # BGR
        r = rng.uniform(0.0, 0.7 if self.category == "breakfast_box" else 0.6)
        scar = bool(r < SCAR_CUT) or not self.textures
        info: dict = {}
        if scar:
            src = _scar_source(img, self.category, self.others, rng)
        else:
            path = self.textures[int(rng.integers(len(self.textures)))]
            src, info["ops"] = ops.texture_augment(self._texture(path, size), rng)
            info["texture"] = path
        mask, info["draws"] = self._mask(img, src, scar, rng)
        beta = self._beta(scar, rng)
        m = (mask > 0.5).astype(np.float64)[..., None]
        imgf, srcf = img.astype(np.float64) / 255.0, src.astype(np.float64) / 255.0
        aug = imgf * (1 - m) + (1 - beta) * srcf * m + beta * imgf * m
        aug = (aug * 255.0).astype(np.uint8)  # truncation, as the reference's astype
        return Simulated(np.ascontiguousarray(aug[..., ::-1]), m[..., 0].astype(np.float32),
                         "scar" if scar else "texture", beta, info)
