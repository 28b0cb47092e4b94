"""Gallery tiles: image | ground truth | heat map | mask thresholded at the stored threshold, and their order."""
from __future__ import annotations

import numpy as np

from runner.results import jet


def tile(image: np.ndarray, mask: np.ndarray | None, anomaly_map: np.ndarray, value_range: tuple[float, float],
         threshold: float | None) -> np.ndarray:
    """(h, 4w, 3) uint8 (three panels when there is no ground truth to show: predict)."""
    lo, hi = value_range
    heat = (0.5 * image + 0.5 * jet(np.clip((anomaly_map.astype(np.float32) - lo) / max(hi - lo, 1e-12), 0, 1)))
    predicted = image.astype(np.float32) * 0.45
    if threshold is not None:
        hit = anomaly_map.astype(np.float32) >= threshold
        predicted[hit] = 0.4 * image[hit] + 0.6 * np.asarray([255, 0, 0], np.float32)
    panels = [image, heat.astype(np.uint8)]
    if mask is not None:
        panels.insert(1, np.repeat((mask > 0)[..., None] * 255, 3, 2).astype(np.uint8))
    panels.append(predicted.astype(np.uint8))
    spacer = np.full((image.shape[0], 2, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [spacer, panel]
    return np.concatenate(out, axis=1)


def outcome(label: int, score: float, threshold: float | None) -> str:
    """``FP`` / ``FN`` / ``TP`` / ``TN`` at the threshold (``-`` without one)."""
    if threshold is None:
        return "-"
    flagged = score >= threshold
    if flagged:
        return "TP" if label == 1 else "FP"
    return "FN" if label == 1 else "TN"


def order(labels: np.ndarray, scores: np.ndarray, threshold: float | None) -> list[int]:
    """False positives, then false negatives, then the rest; by descending score within each group."""
    def key(i: int):
        kind = outcome(int(labels[i]), float(scores[i]), threshold)
        return ({"FP": 0, "FN": 1}.get(kind, 2), -float(scores[i]), i)

    return sorted(range(len(scores)), key=key)
