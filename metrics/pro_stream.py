"""Exact AU-PRO in bounded memory: the same curve as ``metrics.pro`` from a pass over chunks of images.

``pro.au_pro`` sorts every defect-free pixel at once (all of them in memory). The curve's vertices lie only at the
distinct scores of anomalous pixels (``_sorted`` module docstring), so it is enough to *count*, for each of those
scores t, the defect-free pixels with score >= t and > t. Those counts are sums over images, accumulated chunk by
chunk with ``searchsorted`` into the sorted anomalous scores. Memory: one chunk of maps plus the anomalous pixels
(scores, region ids), whatever the number of images; works on ``numpy.memmap`` stacks (``common/mapstore.py``).
The result equals ``pro.au_pro_many`` exactly (same vertices, same integration).
"""
from __future__ import annotations

import cv2
import numpy as np

from ._checks import MetricInputError, undefined
from ._sorted import PositiveRuns, area_to_limit, step_curve

DEFAULT_CHUNK = 64  # images per chunk


class CountedNegatives:
    """Stands in for ``SortedNegatives`` in ``step_curve``: counts precomputed at a fixed set of thresholds."""

    def __init__(self, thresholds_desc: np.ndarray, ge: np.ndarray, gt: np.ndarray, total: int) -> None:
        self._thresholds, self._ge, self._gt, self.total = thresholds_desc, ge, gt, int(total)

    def counts(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if thresholds is not self._thresholds and not np.array_equal(thresholds, self._thresholds):
            raise ValueError("CountedNegatives only answers for the thresholds it was built with")
        return self._ge, self._gt


def _binary_chunk(masks: np.ndarray) -> np.ndarray:
    chunk = np.asarray(masks)
    if chunk.dtype == bool:
        return chunk
    if chunk.size and (chunk.min() < 0 or chunk.max() > 1):
        raise MetricInputError("masks must be binary (bool or 0/1); binarise the ground truth first")
    return chunk.astype(bool)


def au_pro_stream(masks, maps, limits=(0.3,), chunk: int = DEFAULT_CHUNK) -> dict[float, float]:
    """{limit: exact AU-PRO} like ``pro.au_pro_many``; masks, maps: (N, H, W) arrays or memmaps (not copied whole)."""
    limits = tuple(float(lim) for lim in limits)
    for lim in limits:
        if not 0.0 < lim <= 1.0:
            raise ValueError(f"AU-PRO integration limit must be in (0, 1], got {lim}")
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise MetricInputError(f"masks {masks.shape} and anomaly maps {maps.shape} must both be (N, H, W)")
    nan = {lim: float("nan") for lim in limits}
    n = maps.shape[0]
    # pass 1: anomalous scores and their region weights (per image labelling, as metrics.regions)
    scores, ids, offset, negatives_total = [], [], 0, 0
    for start in range(0, n, chunk):
        m_chunk = _binary_chunk(masks[start:start + chunk])
        s_chunk = np.asarray(maps[start:start + chunk])
        if not np.isfinite(s_chunk).all():
            undefined("anomaly maps contain NaN or inf")
            return nan
        negatives_total += int(m_chunk.size - np.count_nonzero(m_chunk))
        for mask, score in zip(m_chunk, s_chunk):
            if not mask.any():
                continue
            count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
            ids.append(labels[mask].astype(np.int64) + (offset - 1))
            scores.append(score[mask])
            offset += count - 1
    if offset == 0:
        undefined("AU-PRO needs at least one anomalous region")
        return nan
    if negatives_total == 0:
        undefined("AU-PRO needs defect-free pixels")
        return nan
    region_ids = np.concatenate(ids)
    sizes = np.bincount(region_ids, minlength=offset)
    runs = PositiveRuns.build(np.concatenate(scores), 1.0 / sizes[region_ids])
    del scores, ids, region_ids
    # pass 2: for each distinct anomalous score t, the defect-free pixels >= t and > t
    ascending = runs.values[::-1]
    m = ascending.size
    at_most = np.zeros(m + 1, np.int64)  # histogram of searchsorted(ascending, v, "right"): #t <= v
    below = np.zeros(m + 1, np.int64)  # histogram of searchsorted(ascending, v, "left"): #t < v
    for start in range(0, n, chunk):
        m_chunk = _binary_chunk(masks[start:start + chunk])
        values = np.asarray(maps[start:start + chunk])[~m_chunk].astype(ascending.dtype, copy=False)
        values.sort()  # sorted needles: the binary searches walk memory in order
        right = np.searchsorted(ascending, values, side="right")
        at_most += np.bincount(right, minlength=m + 1)
        tied = right > 0
        tied[tied] = ascending[right[tied] - 1] == values[tied]  # v equal to a threshold: "left" is one less
        below += np.bincount(right - tied, minlength=m + 1)
    # a negative v is >= t_j iff #t <= v exceeds j; > t_j iff #t < v exceeds j
    ge_asc = np.cumsum(at_most[::-1])[::-1][1:]
    gt_asc = np.cumsum(below[::-1])[::-1][1:]
    negatives = CountedNegatives(runs.values, ge_asc[::-1].copy(), gt_asc[::-1].copy(), negatives_total)
    x, y = step_curve(negatives, runs)
    fpr, pro = x / negatives.total, np.minimum(y / offset, 1.0)
    return {lim: area_to_limit(fpr, pro, lim) for lim in limits}


def au_pro_bounded(masks, maps, integration_limit: float = 0.3, chunk: int = DEFAULT_CHUNK) -> float:
    return au_pro_stream(masks, maps, (integration_limit,), chunk)[integration_limit]
