"""Exact MVTec AD AU-PRO (the toolkit's default PRO).

Definition (official ``pro_curve_util.compute_pro`` + ``trapezoid``): regions are the 8-connected components of each
GT mask; at threshold t, PRO(t) = mean over all regions of the fraction of the region with score >= t, FPR(t) =
fraction of defect-free pixels with score >= t; every distinct score is a threshold (ties enter together); the
curve starts at (0, 0), is integrated with the trapezoidal rule up to the FPR limit (interpolated there) and the area
is divided by the limit.
"""
from __future__ import annotations

import numpy as np

from ._checks import all_finite, as_binary, as_scores, check_stack, undefined
from ._sorted import PositiveRuns, SortedNegatives, area_to_limit, step_curve
from .regions import Regions, label_regions


def pro_curve(masks, maps, device=None, fpr_limit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact PRO curve as (fpr, pro), both (K,) float64, fpr non-decreasing from 0, pro clipped to <= 1.

    masks: (N, H, W) bool/{0,1}; maps: (N, H, W) float. The vertices are those of the official curve at the
    distinct scores of anomalous pixels plus the corner before each (the official points in between lie on the
    horizontal segments, so the piecewise-linear curve is the same). With ``fpr_limit`` the curve is exact up to
    the first point past the limit only. Undefined input (no region, no defect-free pixel, non-finite score) gives
    empty arrays and a warning.
    """
    masks, maps = as_binary(masks, "masks"), as_scores(maps, "maps")
    check_stack(masks, maps)
    curve = curve_from_regions(masks, maps, label_regions(masks), device, fpr_limit)
    return curve if curve is not None else (np.zeros(0), np.zeros(0))


def au_pro(masks, maps, integration_limit: float = 0.3, device=None) -> float:
    """Exact AU-PRO normalised by ``integration_limit`` (0 < limit <= 1): 1.0 for a perfect map, limit/2 for a
    constant one. masks (N, H, W) bool/{0,1}; maps (N, H, W) float32. ``device``: a torch device for the sort."""
    return au_pro_many(masks, maps, (integration_limit,), device)[integration_limit]


def au_pro_many(masks, maps, limits=(0.01, 0.05, 0.1, 0.3, 1.0), device=None) -> dict[float, float]:
    """AU-PRO at several FPR limits from one curve: {limit: value}."""
    limits = tuple(float(lim) for lim in limits)
    for lim in limits:
        if not 0.0 < lim <= 1.0:
            raise ValueError(f"AU-PRO integration limit must be in (0, 1], got {lim}")
    masks, maps = as_binary(masks, "masks"), as_scores(maps, "maps")
    check_stack(masks, maps)
    curve = curve_from_regions(masks, maps, label_regions(masks), device, max(limits))
    if curve is None:
        return {lim: float("nan") for lim in limits}
    return {lim: area_to_limit(*curve, lim) for lim in limits}


def curve_from_regions(masks: np.ndarray, maps: np.ndarray, regions: Regions, device, fpr_limit: float | None,
                       negatives: SortedNegatives | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(fpr, pro) vertices from labelled regions; ``negatives`` (the sorted normal pixels) may be shared."""
    if regions.count == 0:
        undefined("AU-PRO needs at least one anomalous region")
        return None
    if masks.all():
        undefined("AU-PRO needs defect-free pixels")
        return None
    positives = maps[masks]
    if not all_finite(positives) or (negatives is None and not all_finite(maps)):
        undefined("anomaly maps contain NaN or inf")
        return None
    if negatives is None:
        negatives = SortedNegatives.build(maps[~masks], device, fpr_limit, scratch=True)
    weights = 1.0 / regions.sizes[regions.ids]
    runs = PositiveRuns.build(positives, weights)
    x, y = step_curve(negatives, runs)
    return x / negatives.total, np.minimum(y / regions.count, 1.0)
