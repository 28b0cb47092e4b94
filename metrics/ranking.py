"""Exact AUROC, average precision and F1-max, image level (N scores) and pixel level (all pixels pooled).

All three equal scikit-learn (``roc_auc_score``, ``average_precision_score``, the maximum F1 over
``precision_recall_curve``): every distinct score is a threshold, ties enter together.
"""
from __future__ import annotations

import numpy as np

from ._checks import all_finite, as_binary, as_scores, check_stack, check_vector, undefined
from ._sorted import PositiveRuns, SortedNegatives


def image_auroc(labels, scores) -> float:
    """AUROC of (N,) image scores against (N,) labels {0, 1} (1 = anomalous)."""
    split = _split_vector(labels, scores)
    return auroc_from(*split) if split else float("nan")


def image_ap(labels, scores) -> float:
    """Average precision (step rule, no interpolation) of (N,) scores against (N,) labels."""
    split = _split_vector(labels, scores)
    return ap_from(*split) if split else float("nan")


def f1_max(labels, scores) -> tuple[float, float]:
    """(F1-max, threshold) over thresholds ``score >= t``; (N,) arrays. For pixels use :func:`pixel_f1_max`."""
    split = _split_vector(labels, scores)
    return f1_max_from(*split) if split else (float("nan"), float("nan"))


def pixel_auroc(masks, maps, device=None) -> float:
    """AUROC over all pixels of all images pooled; masks (N, H, W) bool/{0,1}, maps (N, H, W) float."""
    split = _split_pixels(masks, maps, device)
    return auroc_from(*split) if split else float("nan")


def pixel_ap(masks, maps, device=None) -> float:
    """Average precision over all pooled pixels; masks (N, H, W), maps (N, H, W)."""
    split = _split_pixels(masks, maps, device)
    return ap_from(*split) if split else float("nan")


def pixel_f1_max(masks, maps, device=None) -> tuple[float, float]:
    """(F1-max, threshold) over all pooled pixels; masks (N, H, W), maps (N, H, W)."""
    split = _split_pixels(masks, maps, device)
    return f1_max_from(*split) if split else (float("nan"), float("nan"))


def auroc_from(neg: SortedNegatives, pos: PositiveRuns) -> float:
    """Mann-Whitney form: sum over positives of #neg below + half #neg tied, over n_pos·n_neg (integer sums)."""
    ge, gt = neg.counts(pos.values)
    below2 = 2 * (neg.total - ge) + (ge - gt)  # twice (#neg < t + ½ #neg == t)
    numerator = int(np.dot(pos.counts, below2))
    return numerator / (2.0 * int(pos.counts.sum()) * neg.total)


def ap_from(neg: SortedNegatives, pos: PositiveRuns) -> float:
    """AP = Σ_k (R_k − R_{k−1}) P_k over the thresholds where recall changes (the distinct positive scores)."""
    ge, _ = neg.counts(pos.values)
    tp = np.cumsum(pos.counts)
    precision = tp / (tp + ge)
    return float(np.sum(pos.counts / tp[-1] * precision))


def f1_max_from(neg: SortedNegatives, pos: PositiveRuns) -> tuple[float, float]:
    # For a given TP count the fewest false positives are at the distinct positive scores: the maximum is there.
    ge, _ = neg.counts(pos.values)
    tp = np.cumsum(pos.counts)
    f1 = 2.0 * tp / (tp + ge + tp[-1])
    best = int(np.argmax(f1))
    return float(f1[best]), float(pos.values[best])


def _split_vector(labels, scores):
    labels, scores = as_binary(labels, "labels"), as_scores(scores, "scores")
    check_vector(labels, scores)
    return _split(labels, scores, None, "image")


def _split_pixels(masks, maps, device):
    masks, maps = as_binary(masks, "masks"), as_scores(maps, "maps")
    check_stack(masks, maps)
    return _split(masks, maps, device, "pixel")


def _split(positive: np.ndarray, scores: np.ndarray, device, level: str):
    if positive.all() or not positive.any():
        undefined(f"{level}-level metric needs both normal and anomalous samples")
        return None
    if not all_finite(scores):
        undefined(f"{level} scores contain NaN or inf")
        return None
    return SortedNegatives.build(scores[~positive], device, scratch=True), PositiveRuns.build(scores[positive])
