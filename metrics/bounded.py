"""``evaluate_all`` in bounded memory: the same metric row from two passes over chunks of images.

``summary.evaluate_all`` sorts every normal pixel of the test set at once. All its pixel metrics only need, at a
known set of thresholds, the number of normal pixels at or above / above each: the distinct anomalous scores (pixel
AUROC, AP, exact AU-PRO; ``_sorted`` module docstring) and the GLASS-repo PRO's linear thresholds. Pass 1 collects
the anomalous pixels (score, region, 5x5 max-filtered score) and the score range; pass 2 counts the normal pixels
against the union of thresholds, chunk by chunk. Memory: one chunk plus the anomalous pixels, whatever the number
of images; the stacks may be ``numpy.memmap`` (``common/mapstore.py``). Same values as ``evaluate_all``.
"""
from __future__ import annotations

import cv2
import numpy as np

from ._checks import MetricInputError, as_binary, as_scores, check_vector, undefined
from ._sorted import PositiveRuns, area_to_limit, step_curve
from .glass_pro import _KERNEL, GlassProTable, _comparison_thresholds, _thresholds, glass_pro_from_table
from .ranking import ap_from, auroc_from, image_ap, image_auroc
from .summary import KEYS

DEFAULT_CHUNK = 64  # images per chunk


class CountedNegatives:
    """Stands in for ``SortedNegatives``: exact counts of normal pixels >= t and > t at a fixed ascending set of
    thresholds, answered for any subset of it."""

    def __init__(self, thresholds: np.ndarray, ge: np.ndarray, gt: np.ndarray, total: int) -> None:
        self.thresholds, self._ge, self._gt, self.total = thresholds, ge, gt, int(total)

    def counts(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        thr = np.asarray(thresholds).astype(self.thresholds.dtype, copy=False)
        index = np.searchsorted(self.thresholds, thr)
        if index.size and (index.max() >= self.thresholds.size or not np.array_equal(self.thresholds[index], thr)):
            raise ValueError("CountedNegatives only answers for the thresholds it was built with")
        return self._ge[index], self._gt[index]

    @classmethod
    def count(cls, masks, maps, thresholds: np.ndarray, chunk: int = DEFAULT_CHUNK) -> "CountedNegatives":
        """One pass over the normal pixels of (N, H, W) masks/maps; ``thresholds`` ascending, unique."""
        m = thresholds.size
        at_most = np.zeros(m + 1, np.int64)  # histogram of #thresholds <= v
        below = np.zeros(m + 1, np.int64)  # histogram of #thresholds < v
        total = 0
        for start in range(0, maps.shape[0], chunk):
            positive = _binary(masks[start:start + chunk])
            values = np.asarray(maps[start:start + chunk])[~positive].astype(thresholds.dtype, copy=False)
            values.sort()  # sorted needles: the binary searches walk memory in order
            total += values.size
            right = np.searchsorted(thresholds, values, side="right")
            at_most += np.bincount(right, minlength=m + 1)
            tied = right > 0
            tied[tied] = thresholds[right[tied] - 1] == values[tied]
            below += np.bincount(right - tied, minlength=m + 1)
        # v >= t_j iff #thresholds <= v exceeds j; v > t_j iff #thresholds < v exceeds j
        ge = np.cumsum(at_most[::-1])[::-1][1:]
        gt = np.cumsum(below[::-1])[::-1][1:]
        return cls(thresholds, ge, gt, total)


def _binary(masks) -> np.ndarray:
    chunk = np.asarray(masks)
    if chunk.dtype == bool:
        return chunk
    if chunk.size and (chunk.min() < 0 or chunk.max() > 1 or not np.array_equal(chunk, np.round(chunk))):
        raise MetricInputError("masks must be binary (bool or 0/1); binarise the ground truth first "
                               "(datasets.preprocess.binarize_gt)")
    return chunk.astype(bool)


def _anomalous_pixels(masks, maps, chunk: int) -> dict:
    """Pass 1: anomalous scores, their region ids (8-connected, per image), the 5x5 max-filtered scores there,
    the score range and whether every value is finite."""
    scores, ids, peaks, offset = [], [], [], 0
    low, high, finite, normal = np.inf, -np.inf, True, 0
    for start in range(0, maps.shape[0], chunk):
        positive = _binary(masks[start:start + chunk])
        values = as_scores(np.asarray(maps[start:start + chunk]), "maps")
        finite = finite and bool(np.isfinite(values).all())
        if not finite:
            break
        low, high = min(low, values.min()), max(high, values.max())
        normal += int(positive.size - np.count_nonzero(positive))
        for mask, score in zip(positive, values):
            if not mask.any():
                continue
            count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
            ids.append(labels[mask].astype(np.int64) + (offset - 1))
            scores.append(score[mask])
            peaks.append(cv2.dilate(score, _KERNEL)[mask])
            offset += count - 1
    cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype))
    return {"scores": cat(scores, np.float32), "ids": cat(ids, np.int64), "peaks": cat(peaks, np.float32),
            "regions": offset, "low": low, "high": high, "finite": finite, "normal": normal}


def evaluate_all_bounded(labels, scores, masks, maps, integration_limit: float = 0.3,
                         chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Same keys and values as ``metrics.evaluate_all``; masks, maps (N, H, W) arrays or memmaps, never copied
    whole. (GLASS-repo PRO with its defaults: 200 thresholds, numpy-1 semantics.)"""
    labels, scores = as_binary(labels, "labels"), as_scores(scores, "scores")
    check_vector(labels, scores)
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise MetricInputError(f"masks {masks.shape} and anomaly maps {maps.shape} must both be (N, H, W)")
    if labels.size != masks.shape[0]:
        raise MetricInputError(f"{labels.size} image labels but {masks.shape[0]} masks")
    out = {"image_auroc": image_auroc(labels, scores), "image_ap": image_ap(labels, scores)}
    nan = float("nan")
    pixels = _anomalous_pixels(masks, maps, chunk)
    if pixels["finite"] and (pixels["scores"].size == 0 or pixels["normal"] == 0):
        undefined("pixel metrics need both normal and anomalous pixels")
        return {**out, "pixel_auroc": nan, "pixel_ap": nan, "pixel_pro": nan, "au_pro": nan}
    if not pixels["finite"]:
        undefined("anomaly maps contain NaN or inf")
        return {**out, "pixel_auroc": nan, "pixel_ap": nan, "pixel_pro": nan, "au_pro": nan}
    dtype = pixels["scores"].dtype
    glass_thresholds = _thresholds(np.array([pixels["low"], pixels["high"]], dtype), 200, 1)
    compare = _comparison_thresholds(glass_thresholds, np.dtype(dtype), 1) if glass_thresholds is not None else None
    positives = PositiveRuns.build(pixels["scores"])
    union = positives.values if compare is None else np.concatenate([positives.values, compare.astype(dtype)])
    negatives = CountedNegatives.count(masks, maps, np.unique(union), chunk)
    out["pixel_auroc"] = auroc_from(negatives, positives)
    out["pixel_ap"] = ap_from(negatives, positives)
    sizes = np.bincount(pixels["ids"], minlength=pixels["regions"])
    weighted = PositiveRuns.build(pixels["scores"], 1.0 / sizes[pixels["ids"]])
    x, y = step_curve(negatives, weighted)
    out["au_pro"] = area_to_limit(x / negatives.total, np.minimum(y / pixels["regions"], 1.0), integration_limit)
    out["pixel_pro"] = nan
    if compare is not None:
        above = np.searchsorted(compare, pixels["peaks"], side="left")
        n_th = compare.size
        hist = np.bincount(pixels["ids"] * (n_th + 1) + above, minlength=pixels["regions"] * (n_th + 1))
        hits = np.cumsum(hist.reshape(pixels["regions"], n_th + 1)[:, ::-1], axis=1)[:, ::-1][:, 1:]
        pro = np.ascontiguousarray((hits / sizes[:, None]).T).mean(axis=1)
        _, false_pos = negatives.counts(compare)
        out["pixel_pro"] = glass_pro_from_table(GlassProTable(glass_thresholds, pro, false_pos / np.float64(
            pixels["normal"])))
    return {key: float(out[key]) for key in KEYS}
