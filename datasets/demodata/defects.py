"""Defects for the demo data. Each returns ``(out, support)``: the defective float image (H, W, 3) and a support
field (H, W) in [0, 1]; ``apply_defect`` keeps ``out`` only where support > ALPHA_MIN, so the saved mask marks
exactly the pixels the defect may change and the image equals the clean one elsewhere.

Arguments: ``clean`` float32 (H, W, 3) in [0, 255]; ``region`` float32 (H, W) in [0, 1] (object alpha, or ones);
``area`` the wanted defect area in pixels (a guide; ``apply_defect`` callers check the bounds).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

from datasets.demodata.sources import rust_texture, smooth_noise

ALPHA_MIN = 0.1
SS = 4  # supersampling factor for anti-aliased drawing


def _down(canvas: np.ndarray, h: int, w: int) -> np.ndarray:
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def pick_point(region: np.ndarray, rng: np.random.Generator, margin: int = 0) -> tuple[float, float]:
    """A random (row, col) where region > 0.9, at least ``margin`` px inside the frame."""
    h, w = region.shape
    ok = region > 0.9
    if margin:
        inner = np.zeros_like(ok)
        inner[margin:h - margin, margin:w - margin] = True
        ok &= inner if (ok & inner).any() else ok
    ys, xs = np.nonzero(ok)
    k = int(rng.integers(len(ys)))
    return float(ys[k]), float(xs[k])


def scratch(clean, region, area, rng):
    """1-3 px anti-aliased polyline: dark core, faint bright rim."""
    h, w = region.shape
    width = rng.uniform(1.0, 2.5)
    length = float(np.clip(area / (width + 1.5), 0.12 * min(h, w), 0.7 * min(h, w)))
    y, x = pick_point(region, rng, margin=int(0.1 * min(h, w)))
    theta = rng.uniform(0, 2 * math.pi)
    pts = [(x, y)]
    n = int(rng.integers(2, 5))
    for _ in range(n):
        theta += rng.normal(0, 0.25)
        x, y = x + math.cos(theta) * length / n, y + math.sin(theta) * length / n
        pts.append((x, y))
    poly = (np.array(pts) * SS).astype(np.int32).reshape(-1, 1, 2)
    core_c = np.zeros((h * SS, w * SS), np.uint8)
    rim_c = np.zeros_like(core_c)
    cv2.polylines(core_c, [poly], False, 255, max(1, round(width * SS)), cv2.LINE_AA)
    cv2.polylines(rim_c, [poly], False, 255, round((width + 2.5) * SS), cv2.LINE_AA)
    core, rim = _down(core_c, h, w) * region, _down(rim_c, h, w) * region * 0.45
    light = np.clip(clean * 1.15 + 25, 0, 255)
    dark = clean * rng.uniform(0.25, 0.45)
    out = _lerp(_lerp(clean, light, rim), dark, core)
    return out, np.maximum(core, rim)


def crack(clean, region, area, rng):
    """Branching, tapered random walk, very dark."""
    h, w = region.shape
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    t0 = rng.uniform(2.0, 3.5)
    length = float(np.clip(area / (0.6 * t0), 0.15 * min(h, w), 0.8 * min(h, w)))

    def walk(y, x, theta, n_steps, thick0):
        path = [(y, x, thick0)]
        for k in range(n_steps):
            theta += rng.normal(0, 0.12)
            y, x = y + 1.5 * math.sin(theta), x + 1.5 * math.cos(theta)
            path.append((y, x, thick0 * (1 - k / n_steps) + 0.6))
        for (y0, x0, t), (y1, x1, _) in zip(path[:-1], path[1:]):
            cv2.line(canvas, (int(x0 * SS), int(y0 * SS)), (int(x1 * SS), int(y1 * SS)), 255,
                     max(1, round(t * SS)), cv2.LINE_AA)
        return path

    y, x = pick_point(region, rng, margin=int(0.15 * min(h, w)))
    theta = rng.uniform(0, 2 * math.pi)
    main = walk(y, x, theta, int(length / 1.5), t0)
    for _ in range(int(rng.integers(1, 3))):
        by, bx, bt = main[int(rng.integers(len(main) // 4, max(len(main) // 4 + 1, 3 * len(main) // 4)))]
        walk(by, bx, theta + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), int(rng.uniform(0.25, 0.5) * len(main)),
             bt)
    a = _down(canvas, h, w) * region
    return _lerp(clean, clean * rng.uniform(0.1, 0.25), a), a


def hole(clean, region, area, rng):
    """Shaded elliptical pit: dark inside with a lit far wall and a bright rim on the near side."""
    h, w = region.shape
    ratio = rng.uniform(0.5, 1.0)
    a_ax = math.sqrt(area / (math.pi * ratio))
    b_ax = a_ax * ratio
    y, x = pick_point(region, rng, margin=int(a_ax) + 2)
    phi = rng.uniform(0, 180)
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    cv2.ellipse(canvas, (int(x * SS), int(y * SS)), (int(a_ax * SS), int(b_ax * SS)), phi, 0, 360, 255, -1,
                cv2.LINE_AA)
    inside = _down(canvas, h, w) * region
    ring_c = np.zeros_like(canvas)
    cv2.ellipse(ring_c, (int(x * SS), int(y * SS)), (int((a_ax + 1) * SS), int((b_ax + 1) * SS)), phi, 0, 360, 255,
                2 * SS, cv2.LINE_AA)
    light = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = np.clip(((xx - x) * math.cos(light) + (yy - y) * math.sin(light)) / (a_ax + 1e-6), -1, 1)
    shade = clean * (0.15 + 0.3 * (s + 1) / 2)[..., None]
    rim = _down(ring_c, h, w) * region * 0.6 * np.clip(-s, 0, 1)
    out = _lerp(_lerp(clean, np.clip(clean * 1.3 + 20, 0, 255), rim), shade, inside)
    return out, np.maximum(inside, rim)


def _blob(h, w, centre, radius, rng, threshold=0.45):
    """Soft, irregular blob (radial falloff modulated by low-frequency noise), values in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (radius ** 2)
    scale = int(max(2, round(min(h, w) / (1.5 * radius))))
    field = np.exp(-d2) * (0.8 + 0.6 * smooth_noise(h, w, scale, rng))
    return np.clip((field - threshold) / 0.2, 0, 1)


def stain(clean, region, area, rng):
    """Low-frequency blob blended toward an image-sampled colour changed by +-20 % per channel."""
    h, w = region.shape
    radius = math.sqrt(area / math.pi) * 1.15
    y, x = pick_point(region, rng)
    sy, sx = pick_point(region, rng)
    colour = clean[int(sy), int(sx)] * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    a = _blob(h, w, (y, x), radius, rng) * rng.uniform(0.55, 0.85) * region
    return _lerp(clean, np.broadcast_to(colour, clean.shape), a), a


def contamination(clean, region, area, rng):
    """Foreign 'rust/dirt' texture in a Perlin-modulated blob, beta ~ U(0.2, 0.6) (weight of the image)."""
    h, w = region.shape
    radius = math.sqrt(area / math.pi) * 1.15
    y, x = pick_point(region, rng)
    a = (_blob(h, w, (y, x), radius, rng, threshold=0.4) > 0.5).astype(np.float32)
    a = ndimage.gaussian_filter(a, 0.8) * region
    beta = rng.uniform(0.2, 0.6)
    mixed = beta * clean + (1 - beta) * rust_texture(h, w, rng)
    return _lerp(clean, mixed, a), a


def missing_piece(clean, region, area, rng, background):
    """A bite out of the object's rim: the background shows through (``background`` float32 (H, W, 3))."""
    h, w = region.shape
    edge = (region > 0.5) & ~ndimage.binary_erosion(region > 0.5, iterations=2)
    ys, xs = np.nonzero(edge)
    k = int(rng.integers(len(ys)))
    r = math.sqrt(2 * area / math.pi)  # about half of the disc lies on the object
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    cv2.circle(canvas, (int(xs[k] * SS), int(ys[k] * SS)), int(r * SS), 255, -1, cv2.LINE_AA)
    cut = _down(canvas, h, w)
    # clean = bg*(1-region) + obj*region, so removing cut*region of the object is lerp(clean, bg, cut).
    return _lerp(clean, background, cut), cut * region


TEXTURE_DEFECTS = {"scratch": scratch, "crack": crack, "hole": hole, "stain": stain, "contamination": contamination}
OBJECT_DEFECTS = {"scratch": scratch, "hole": hole, "stain": stain, "contamination": contamination,
                  "missing_piece": missing_piece}


def apply_defect(clean_u8: np.ndarray, out: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(defective uint8 image, uint8 mask 0/255): ``out`` where support > ALPHA_MIN, ``clean_u8`` elsewhere."""
    mask = support > ALPHA_MIN
    image = np.where(mask[..., None], np.clip(np.rint(out), 0, 255).astype(np.uint8), clean_u8)
    return image, (mask * 255).astype(np.uint8)
