"""The GLASS-paper PRO (GLASS repository ``metrics.compute_pro``): only for reproducing published GLASS numbers.

It is NOT the MVTec AU-PRO: about 200 linear thresholds; the binary map is dilated with a 5x5 rectangle before the
per-region overlap; FPR on the undilated map; rows with FPR < 0.3 kept and their FPRs min-max rescaled (no division
by 0.3, no interpolation); ``sklearn.metrics.auc``. Label it "GLASS-repo PRO" wherever it is reported.

The reference re-labels and dilates every image at every threshold. Here: a dilated binary map at threshold t is
``maxfilter5x5(map) > t``, so one max filter per image and one ``searchsorted`` of the region pixels into the
thresholds give every per-region overlap count at once (integer counts, the same values).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._checks import MetricInputError, all_finite, as_scores, check_stack, undefined, _to_numpy
from ._sorted import SortedNegatives
from .regions import label_regions

_KERNEL = np.ones((5, 5), np.uint8)


@dataclass
class GlassProTable:
    """The reference's internal table before filtering, one row per threshold (ascending): (T,) float64 each."""

    threshold: np.ndarray
    pro: np.ndarray
    fpr: np.ndarray


def glass_pro(masks, maps, num_th: int = 200, numpy_semantics: int = 1, device=None,
              negatives: SortedNegatives | None = None) -> float:
    """GLASS-repo PRO of masks (N, H, W) (binary, or float in [0, 1] as the reference gets them) and maps (N, H, W).

    ``numpy_semantics`` 1 (default) reproduces the published numbers (GLASS's pinned numpy 1.26: float64 step,
    float32 comparisons); 2 what the same code computes under numpy 2. Where the reference raises (fewer than two
    thresholds with FPR < 0.3, a constant map) GLASS reports 0: here NaN with a warning.
    """
    table = glass_pro_table(masks, maps, num_th, numpy_semantics, device, negatives, _fpr_limit=0.3)
    return glass_pro_from_table(table)


def glass_pro_from_table(table: GlassProTable | None) -> float:
    """The reference's filtering and integration of its table (NaN for an undefined table)."""
    if table is None:
        return float("nan")
    keep = table.fpr < 0.3
    fpr, pro = table.fpr[keep], table.pro[keep]
    if fpr.size < 2:
        return undefined(f"GLASS-repo PRO has {fpr.size} threshold(s) with FPR < 0.3 (the reference raises and "
                         "reports 0)")
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min() + 1e-10)
    area = float(np.trapezoid(pro, fpr))
    return -area if np.all(np.diff(fpr) <= 0) else area


def glass_pro_table(masks, maps, num_th: int = 200, numpy_semantics: int = 1, device=None,
                    negatives: SortedNegatives | None = None, _fpr_limit: float | None = None
                    ) -> GlassProTable | None:
    """Every row (threshold, pro, fpr) the reference computes, or None (with a warning) where it is undefined.

    (``_fpr_limit``: FPRs above it may be reported as 1; used by :func:`glass_pro`, which drops those rows.)
    """
    masks, maps = _as_glass_masks(masks), as_scores(maps, "maps")
    check_stack(masks, maps)
    if not all_finite(maps):
        undefined("anomaly maps contain NaN or inf")
        return None
    thresholds = _thresholds(maps, num_th, numpy_semantics)
    if thresholds is None:
        return None
    compare = _comparison_thresholds(thresholds, maps.dtype, numpy_semantics)
    region_mask = masks == 1
    regions = label_regions(region_mask)
    if regions.count == 0:
        undefined("GLASS-repo PRO needs at least one anomalous region")
        return None
    # Dilated hits per region: the 5x5 max filter of the map, sampled at the region pixels.
    peak = np.concatenate([cv2.dilate(m, _KERNEL)[g] for m, g in zip(maps, region_mask) if g.any()])
    above = np.searchsorted(compare, peak, side="left")  # number of thresholds below each pixel's peak
    n_th = compare.size
    hist = np.bincount(regions.ids * (n_th + 1) + above, minlength=regions.count * (n_th + 1))
    hits = np.cumsum(hist.reshape(regions.count, n_th + 1)[:, ::-1], axis=1)[:, ::-1][:, 1:]
    pro = np.ascontiguousarray((hits / regions.sizes[:, None]).T).mean(axis=1)
    if negatives is None:
        negatives = SortedNegatives.build(maps[masks != 1], device, fpr_limit=_fpr_limit, scratch=True)
    _, false_pos = negatives.counts(compare)
    if np.issubdtype(masks.dtype, np.integer):  # binary: the count of zeros, without a float64 copy of the stack
        normal = np.float64(masks.size - np.count_nonzero(masks))
    else:
        normal = (1.0 - masks).sum(dtype=np.float64)
    fpr = false_pos / normal
    return GlassProTable(thresholds, pro, fpr)


def _as_glass_masks(masks) -> np.ndarray:
    array = _to_numpy(masks)
    if array.dtype == bool:
        return array.view(np.uint8)
    if array.size and (array.min() < 0 or array.max() > 1):
        raise MetricInputError(f"GLASS-repo PRO masks must lie in [0, 1], found [{array.min()}, {array.max()}]")
    return array


def _thresholds(maps: np.ndarray, num_th: int, numpy_semantics: int) -> np.ndarray | None:
    """``np.arange(min, max, (max - min) / num_th)`` as the reference's numpy evaluates it (float64 values)."""
    if numpy_semantics not in (1, 2):
        raise ValueError(f"numpy_semantics must be 1 or 2, got {numpy_semantics}")
    dtype = maps.dtype.type
    low, high = maps.min(), maps.max()
    span = dtype(high - low)
    if span == 0:
        undefined("GLASS-repo PRO of a constant map (the reference raises and reports 0)")
        return None
    start = np.float64(low)
    if numpy_semantics == 1:
        delta = np.float64(span) / num_th
        count = int(np.ceil(np.float64(span) / delta))
        step = (start + delta) - start
    else:
        delta = dtype(span / dtype(num_th))
        count = int(np.ceil(dtype(span / delta)))
        step = np.float64(dtype(low + delta)) - start
    return start + np.arange(count, dtype=np.float64) * step


def _comparison_thresholds(thresholds: np.ndarray, dtype: np.dtype, numpy_semantics: int) -> np.ndarray:
    """Thresholds in the maps' dtype such that ``map > result`` equals the reference's ``map > threshold``.

    numpy 1 rounds the float64 threshold to float32 (value-based casting); numpy 2 compares in float64, which for a
    float32 map value equals comparing with the threshold rounded *down* to float32.
    """
    if dtype == np.float64:
        return thresholds
    rounded = thresholds.astype(dtype)
    if numpy_semantics == 2:
        too_high = rounded.astype(np.float64) > thresholds
        rounded[too_high] = np.nextafter(rounded[too_high], dtype.type(-np.inf))
    return rounded
