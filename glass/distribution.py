"""Manifold (0) or hypersphere (1) GAS per class (glass.md §2 table, §5.1) and the FFT judge.

The reference reads ``datasets/excel/<dataset>_distribution.xlsx``; the same table is built in here.
``--distribution``: 0 = the table; 1 = run the FFT judge, report its decision, then train with it;
2 = manifold; 3 = hypersphere; 4 = the opposite of the table.
"""
from __future__ import annotations

import numpy as np

from common.errors import UserError

HYPERSPHERE = {
    "mvtec": {"bottle", "cable", "pill", "screw", "transistor"},
    "visa": {"cashew", "fryum", "pcb1", "pcb2", "pcb4", "pipe_fryum"},
    "mpdd": set(),
    "wfdd": set(),
}
MANIFOLD = {
    "mvtec": {"carpet", "grid", "leather", "tile", "wood", "capsule", "hazelnut", "metal_nut", "toothbrush", "zipper"},
    "visa": {"candle", "capsules", "chewinggum", "macaroni1", "macaroni2", "pcb3"},
    "mpdd": {"bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"},
    "wfdd": {"grey_cloth", "grid_cloth", "yellow_cloth", "pink_flower"},
}
# MAD-man / MAD-sys evaluate MVTec checkpoints; their classes are the MVTec ones
ALIASES = {"mad-man": "mvtec", "mad-sys": "mvtec"}


def table_value(dataset: str, cls_name: str) -> int | None:
    """The table's svd for a class (1 hypersphere, 0 manifold), None when the class is not in it."""
    key = ALIASES.get(dataset, dataset)
    if cls_name in HYPERSPHERE.get(key, ()):
        return 1
    if cls_name in MANIFOLD.get(key, ()):
        return 0
    return None


def resolve_svd(distribution: int, dataset: str, cls_name: str) -> int | None:
    """svd for ``--distribution`` 0, 2, 3, 4; None for 1 (the judge decides from the training images)."""
    if distribution == 1:
        return None
    if distribution == 2:
        return 0
    if distribution == 3:
        return 1
    if distribution not in (0, 4):
        raise UserError(f"--distribution must be 0..4, got {distribution}")
    value = table_value(dataset, cls_name)
    if value is None:
        raise UserError(f"--distribution {distribution}: class {cls_name!r} of dataset {dataset!r} is not in the "
                        f"built-in manifold/hypersphere table; use --distribution 1 (FFT judge), 2 (manifold) or "
                        f"3 (hypersphere)")
    return value if distribution == 0 else 1 - value


def fft_judge(mean_image_bgr: np.ndarray) -> tuple[int, dict]:
    """The reference's FFT test on the mean training image (uint8 BGR, H x W x 3) -> (svd, statistics).

    Resize to 289 x 289, grey, 39 x 39 box blur, DFT, shift, magnitude 20 ln|F| > 170; hypersphere iff the bright
    spectrum points are dense ((l1 or l2 density) > 0.21) and spread (radius > 12) and many (n > 60).
    """
    import cv2

    image = cv2.resize(mean_image_bgr, (289, 289))
    gray = cv2.blur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (39, 39))
    spectrum = np.fft.fftshift(cv2.dft(np.float32(gray), flags=cv2.DFT_COMPLEX_OUTPUT), axes=(0, 1))
    magnitude = 20 * np.log(cv2.magnitude(spectrum[:, :, 0], spectrum[:, :, 1]) + 1e-12)
    bright = magnitude > 170
    h, w = bright.shape
    cy, cx = h // 2, w // 2
    ys, xs = np.nonzero(bright)
    n = int(len(ys))
    if n == 0:
        return 0, {"n": 0, "radius": 0.0, "l1_density": 0.0, "l2_density": 0.0}
    dy, dx = np.abs(ys - cy), np.abs(xs - cx)
    radius = float(np.sqrt(dy ** 2 + dx ** 2).max())
    l1_density = n / (4 * max(int(dx.max()), 1) * max(int(dy.max()), 1))
    gy, gx = np.mgrid[0:2 * h, 0:2 * w]
    inside = int(((gy - cy) ** 2 + (gx - cx) ** 2 <= radius ** 2).sum())
    l2_density = n / max(inside, 1)
    flag = int((l1_density > 0.21 or l2_density > 0.21) and radius > 12 and n > 60)
    return flag, {"n": n, "radius": radius, "l1_density": l1_density, "l2_density": l2_density}
