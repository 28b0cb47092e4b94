"""Perlin noise and the GLASS Perlin anomaly mask (glass.md §3.1), on an explicit ``np.random.Generator``.

Noise is the DRAEM form: a lattice of random unit gradients, quintic fade, sqrt(2) scaling. The reference rotates
the noise with imgaug; here the bit-exact ``cv2.warpAffine`` recipe from glass.md replaces it (no imgaug).
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import cv2
import numpy as np

from common.errors import UserError

MAX_SCALE_EXPONENT = 6  # exclusive: scales 2**0 .. 2**5
THRESHOLD = 0.5
MAX_TRIES = 1000


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(shape: Sequence[int], scales: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """DRAEM ``rand_perlin_2d`` noise.

    shape: (H, W); scales: (sy, sx) lattice cells along rows and columns (each must divide its side).
    Draws ``(sy+1)*(sx+1)`` gradient angles ``2*pi*U(0,1)`` from ``rng`` (row-major).
    Returns float64 (H, W), values in about [-1, 1].
    """
    h, w = int(shape[-2]), int(shape[-1])
    sy, sx = int(scales[0]), int(scales[1])
    if h % sy or w % sx:
        raise UserError(f"image size {h}x{w} is not divisible by the Perlin scale {sy}x{sx}; "
                        f"use an --imagesize that is a multiple of 32")
    angles = 2.0 * math.pi * rng.random((sy + 1, sx + 1))
    gy, gx = np.cos(angles), np.sin(angles)  # gradient components along (row, column)

    # Local coordinates in the cell, computed as the reference does: (i * res/size) mod 1.
    v = (np.arange(h) * (sy / h)) % 1.0
    u = (np.arange(w) * (sx / w)) % 1.0
    ci = np.arange(h) // (h // sy)
    cj = np.arange(w) // (w // sx)
    V, U = v[:, None], u[None, :]

    def corner(di: int, dj: int) -> np.ndarray:
        a = gy[(ci + di)[:, None], (cj + dj)[None, :]]
        b = gx[(ci + di)[:, None], (cj + dj)[None, :]]
        return (V - di) * a + (U - dj) * b

    n00, n10, n01, n11 = corner(0, 0), corner(1, 0), corner(0, 1), corner(1, 1)
    fv, fu = _fade(V), _fade(U)
    # First interpolation along the row axis, then along the column axis (DRAEM order).
    top = n00 + fv * (n10 - n00)
    bottom = n01 + fv * (n11 - n01)
    return math.sqrt(2.0) * (top + fu * (bottom - top))


rand_perlin_2d = perlin_noise


def rotate_noise(noise: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (H, W) float64 ``noise`` clockwise (as displayed) by ``angle`` degrees about the centre.

    Bilinear, constant 0 outside: the imgaug ``Affine(rotate=angle)`` result, bit-exact (glass.md §3.1).
    """
    h, w = noise.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), -float(angle), 1.0)
    return cv2.warpAffine(noise, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def perlin_threshold_map(shape: Sequence[int], rng: np.random.Generator, min_exponent: int = 0,
                         max_exponent: int = MAX_SCALE_EXPONENT, threshold: float = THRESHOLD,
                         max_angle: float = 90.0) -> np.ndarray:
    """One binary Perlin map (GLASS ``generate_thr``; SLSG uses other exponents/thresholds).

    Draw order: sy, sx = 2**integers(min_exponent, max_exponent) (exclusive), gradients, angle U(-max_angle,
    max_angle). Returns float32 (H, W) in {0, 1}: rotated noise > threshold.
    """
    sy = 2 ** int(rng.integers(min_exponent, max_exponent))
    sx = 2 ** int(rng.integers(min_exponent, max_exponent))
    noise = perlin_noise(shape, (sy, sx), rng)
    angle = rng.uniform(-max_angle, max_angle)
    return (rotate_noise(noise, angle) > threshold).astype(np.float32)


def combine_maps(m1: np.ndarray, m2: np.ndarray, u: float) -> np.ndarray:
    """GLASS combination: u > 2/3 union, 1/3 < u <= 2/3 intersection, else m1 alone."""
    if u > 2.0 / 3.0:
        return np.maximum(m1, m2)
    if u > 1.0 / 3.0:
        return m1 * m2
    return m1


def check_sizes(shape: Sequence[int], feat_size: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Validate image/feature sizes for GLASS synthesis; returns (H, W, h, w). Raises ``UserError``."""
    h, w = int(shape[-2]), int(shape[-1])
    fh, fw = (feat_size, feat_size) if isinstance(feat_size, (int, np.integer)) else map(int, feat_size)
    scale = 2 ** (MAX_SCALE_EXPONENT - 1)
    if h % scale or w % scale:
        raise UserError(f"--imagesize {h if h % scale else w} cannot be used for Perlin anomaly synthesis: "
                        f"it must be a multiple of {scale} (e.g. 256 or 288)")
    if fh <= 0 or fw <= 0 or h % fh or w % fw:
        raise UserError(f"--imagesize {h}x{w} is not a multiple of the feature map size {fh}x{fw} "
                        f"(imagesize / --downsampling must be a whole number matching the backbone stride)")
    return h, w, fh, fw


def _as_fg(fg, h: int, w: int) -> np.ndarray | None:
    if fg is None:
        return None
    arr = fg.detach().cpu().numpy() if hasattr(fg, "detach") else np.asarray(fg)
    arr = np.asarray(arr, dtype=np.float32).reshape(arr.shape[-2:]) if arr.ndim == 3 else arr.astype(np.float32)
    if arr.shape != (h, w):
        raise ValueError(f"fg mask shape {arr.shape} does not match the image {(h, w)}")
    return (arr > 0).astype(np.float32)


def perlin_mask(shape: Sequence[int], feat_size: int | Sequence[int], rng: np.random.Generator, fg=None,
                max_tries: int = MAX_TRIES) -> tuple[np.ndarray, np.ndarray]:
    """GLASS LAS mask.

    shape: (H, W) or (C, H, W); feat_size: patch-grid side h (or (h, w)); fg: (H, W) or (1, H, W) foreground
    (array or tensor, non-zero = object) or None. Repeats until the patch mask is non-empty; after ``max_tries``
    failures with a foreground mask, warns and continues with fg = 1.
    Returns ``mask_s`` float32 (h, w) (max-pool, kernel = stride = H/h) and ``mask_l`` float32 (H, W), both {0, 1}.
    """
    h, w, fh, fw = check_sizes(shape, feat_size)
    fg_arr = _as_fg(fg, h, w)
    tries = 0
    while True:
        m1 = perlin_threshold_map((h, w), rng)
        m2 = perlin_threshold_map((h, w), rng)
        mask_l = combine_maps(m1, m2, float(rng.random()))
        if fg_arr is not None:
            mask_l = mask_l * fg_arr
        mask_s = mask_l.reshape(fh, h // fh, fw, w // fw).max(axis=(1, 3))
        if mask_s.max() > 0:
            return mask_s.astype(np.float32), mask_l.astype(np.float32)
        tries += 1
        if fg_arr is not None and tries >= max_tries:
            warnings.warn(f"no Perlin anomaly fell inside the foreground mask after {tries} tries "
                          f"(empty or tiny fg mask); using the whole image for this sample", RuntimeWarning)
            fg_arr = None
