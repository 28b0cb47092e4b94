"""Foreground masks for GLASS ``--fg 1`` made from the normal training images (the reference ships no code for this).

Rule, per image (all sizes relative to the image, so the result does not depend on its resolution):

1. Work on a copy whose longer side is ``WORK_SIDE`` px (area resampling); the mask is resized back (nearest) at the end.
2. Two candidate channels: grey (luma) and HSV saturation, each Gaussian-blurred (sigma = ``BLUR`` x side).
   Each is thresholded with Otsu; the channel whose two classes differ more (larger between-class variance) is
   kept; its between-class / total variance ("separability", in [0, 1]) enters the class rule.
3. Polarity from the border: the side of the threshold that covers most of a frame ``BORDER`` x side wide is the
   background; the other side is the foreground.
4. Morphological close then open with an ellipse of diameter ``MORPH`` x side (joins the object, removes specks).
5. Keep the largest connected component and every component at least ``KEEP`` of its area; fill holes.

Per class, the object-or-texture decision uses the statistics of all images: the class is a texture (every mask =
the whole frame) when the median border purity (share of the frame that is background) is below ``MIN_PURITY``,
the median coverage is above ``MAX_COVER``, the median separability is below ``MIN_SEPARABILITY``, or the coverage
varies too much between images (coefficient of variation above ``MAX_COVER_CV``); otherwise it is an object and each
image gets its own mask. ``kind="object"|"texture"`` overrides the decision.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from scipy import ndimage

WORK_SIDE = 256
BLUR = 0.01
BORDER = 0.03
MORPH = 0.03
KEEP = 0.2
MIN_PURITY = 0.9
MAX_COVER = 0.9
MIN_SEPARABILITY = 0.5
MAX_COVER_CV = 0.5
KINDS = ("auto", "object", "texture")
Kind = Literal["auto", "object", "texture"]


@dataclass(frozen=True)
class ImageMask:
    """One image's binarisation: ``mask`` bool (H, W) at the image's size and the statistics the class rule uses."""

    mask: np.ndarray
    coverage: float      # share of the frame that is foreground
    purity: float        # share of the border frame that is background
    separability: float  # Otsu between-class variance / total variance of the chosen channel


@dataclass(frozen=True)
class ClassDecision:
    kind: Literal["object", "texture"]
    reason: str


def _otsu(channel: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Otsu split of a uint8 channel -> (above-threshold bool mask, separability, between-class variance)."""
    threshold, binary = cv2.threshold(channel, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    values = channel.astype(np.float64)
    total = values.var()
    above = binary.astype(bool)
    share = above.mean()
    if total <= 0 or share in (0.0, 1.0):
        return above, 0.0, 0.0
    between = share * (1 - share) * (values[above].mean() - values[~above].mean()) ** 2
    return above, float(between / total), float(between)


def _border(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    width = max(1, int(round(BORDER * max(h, w))))
    frame = np.zeros(shape, bool)
    frame[:width], frame[-width:], frame[:, :width], frame[:, -width:] = True, True, True, True
    return frame


def _clean(mask: np.ndarray) -> np.ndarray:
    side = max(mask.shape)
    diameter = max(3, int(round(MORPH * side)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
    out = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    out = cv2.morphologyEx(out, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(out, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= KEEP * areas.max())
    return ndimage.binary_fill_holes(np.isin(labels, keep))


def binarize(rgb: np.ndarray) -> ImageMask:
    """The foreground of one uint8 RGB image (H, W, 3) by the module's rule (steps 1-5)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else rgb
    sigma = max(0.5, BLUR * max(small.shape[:2]))
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    saturation = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)[..., 1]
    # the channel with the larger absolute contrast between its two Otsu classes (both channels span 0..255);
    # the scale-free separability alone would favour a flat channel split by its quantisation noise
    above, separability, _ = max((_otsu(cv2.GaussianBlur(c, (0, 0), sigma)) for c in (grey, saturation)),
                                 key=lambda r: r[2])
    frame = _border(above.shape)
    foreground = ~above if above[frame].mean() > 0.5 else above
    purity = float(1 - foreground[frame].mean())
    foreground = _clean(foreground)
    mask = cv2.resize(foreground.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) \
        if foreground.shape != (h, w) else foreground
    return ImageMask(mask, float(mask.mean()), purity, separability)


def decide_kind(results: list[ImageMask]) -> ClassDecision:
    """Object on a background, or a full-frame texture, from the per-image statistics (module docstring)."""
    if not results:
        return ClassDecision("texture", "no images")
    purity = float(np.median([r.purity for r in results]))
    cover = np.array([r.coverage for r in results])
    separability = float(np.median([r.separability for r in results]))
    cv = float(cover.std() / cover.mean()) if cover.mean() > 0 else float("inf")
    checks = [
        (purity < MIN_PURITY, f"border purity {purity:.2f} < {MIN_PURITY}"),
        (float(np.median(cover)) > MAX_COVER, f"coverage {np.median(cover):.2f} > {MAX_COVER}"),
        (separability < MIN_SEPARABILITY, f"separability {separability:.2f} < {MIN_SEPARABILITY}"),
        (cv > MAX_COVER_CV, f"coverage varies (cv {cv:.2f} > {MAX_COVER_CV})"),
    ]
    failed = [text for bad, text in checks if bad]
    if failed:
        return ClassDecision("texture", "; ".join(failed))
    return ClassDecision("object", f"border purity {purity:.2f}, coverage {np.median(cover):.2f}, "
                                   f"separability {separability:.2f}, coverage cv {cv:.2f}")


def class_masks(images: list[np.ndarray], kind: Kind = "auto") -> tuple[list[np.ndarray], ClassDecision]:
    """Masks (bool, each at its image's size) for the normal images of one class, and the decision taken."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "texture":
        return [np.ones(im.shape[:2], bool) for im in images], ClassDecision("texture", "--kind texture")
    results = [binarize(im) for im in images]
    decision = ClassDecision("object", "--kind object") if kind == "object" else decide_kind(results)
    if decision.kind == "texture":
        return [np.ones(im.shape[:2], bool) for im in images], decision
    # an object image whose binarisation found nothing gets the whole frame (GLASS needs a non-empty foreground)
    return [r.mask if r.mask.any() else np.ones_like(r.mask) for r in results], decision
