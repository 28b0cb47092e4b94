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
from .bounded import DEFAULT_CHUNK, CountedNegatives, _binary



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
        m_chunk = _binary(masks[start:start + chunk])
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
    negatives = CountedNegatives.count(masks, maps, runs.values[::-1].copy(), chunk)
    x, y = step_curve(negatives, runs)
    fpr, pro = x / negatives.total, np.minimum(y / offset, 1.0)
    return {lim: area_to_limit(fpr, pro, lim) for lim in limits}


def au_pro_bounded(masks, maps, integration_limit: float = 0.3, chunk: int = DEFAULT_CHUNK) -> float:
    return au_pro_stream(masks, maps, (integration_limit,), chunk)[integration_limit]
