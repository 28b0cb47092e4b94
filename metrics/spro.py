"""MVTec LOCO AD sPRO and AU-sPRO, exact curve (every distinct score is a threshold).

sPRO of a defect channel at threshold τ: ``min(|{map > τ} ∩ channel| / saturation_area, 1)``; mean sPRO(τ) = mean
over all channels of all images; FPR(τ) over the pixels that lie in no channel of their image, all images pooled.
Only the ``saturation_area`` highest-scoring pixels of a channel can count, so each gets weight
``1 / (saturation_area · #channels)``: the exact curve is then a weighted cumulative sum in score order.
The official LOCO script samples the same curve at adaptive thresholds; it agrees up to its refinement resolution.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._checks import MetricInputError, all_finite, as_scores, undefined
from ._sorted import PositiveRuns, SortedNegatives, area_to_limit, step_curve

LOCO_LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)

# One image's ground truth: a list of (channel mask (H, W) bool, saturation area int); [] for a good image.
Channels = Sequence[tuple[np.ndarray, int]]


def saturation_area(defect_area: int, threshold: float, relative: bool) -> int:
    """``int(threshold · area)`` if relative (threshold in (0, 1]), else ``min(threshold, area)`` (pixels)."""
    return int(threshold * defect_area) if relative else int(min(threshold, defect_area))


def spro_curve(maps: Sequence[np.ndarray], channels: Sequence[Channels]) -> tuple[np.ndarray, np.ndarray] | None:
    """(fpr, mean_spro), each (K,) float64 from (0, 0) to (1, 1); None (with a warning) where undefined.

    maps: one (H, W) float map per image (sizes may differ between images); channels: per image, its channels.
    """
    if len(maps) != len(channels):
        raise MetricInputError(f"{len(maps)} anomaly maps but {len(channels)} ground-truth entries")
    n_channels = sum(len(c) for c in channels)
    if n_channels == 0:
        undefined("sPRO needs at least one defect channel")
        return None
    pos_scores, pos_weights, negatives = [], [], []
    for amap, chans in zip(maps, channels):
        amap = as_scores(amap, "maps")
        if not all_finite(amap):
            undefined("anomaly maps contain NaN or inf")
            return None
        defect = np.zeros(amap.shape, bool)
        for mask, sat in chans:
            if mask.shape != amap.shape:
                raise MetricInputError(f"defect channel {mask.shape} and anomaly map {amap.shape} differ in shape")
            if sat <= 0:
                undefined("a defect channel has saturation area 0 (relative saturation threshold · area < 1)")
                return None
            defect |= mask
            top = np.sort(amap[mask])[::-1][:sat]
            pos_scores.append(top)
            pos_weights.append(np.full(top.size, 1.0 / (sat * n_channels)))
        negatives.append(amap[~defect])
    negative = np.concatenate(negatives)
    if negative.size == 0:
        undefined("sPRO needs defect-free pixels")
        return None
    dtype = np.result_type(*pos_scores, negative)
    neg = SortedNegatives.build(negative.astype(dtype, copy=False), scratch=True)
    runs = PositiveRuns.build(np.concatenate(pos_scores).astype(dtype, copy=False), np.concatenate(pos_weights))
    x, y = step_curve(neg, runs)
    return np.r_[x / neg.total, 1.0], np.r_[np.minimum(y, 1.0), 1.0]


def au_spro(maps: Sequence[np.ndarray], channels: Sequence[Channels], limits=LOCO_LIMITS) -> dict[float, float]:
    """{limit: AU-sPRO} = trapezoid of mean sPRO over FPR in [0, limit] (interpolated at the limit) / limit."""
    limits = tuple(float(lim) for lim in limits)
    for lim in limits:
        if not 0.0 < lim <= 1.0:
            raise ValueError(f"sPRO FPR limit must be in (0, 1], got {lim}")
    curve = spro_curve(maps, channels)
    if curve is None:
        return {lim: float("nan") for lim in limits}
    return {lim: area_to_limit(*curve, lim) for lim in limits}
