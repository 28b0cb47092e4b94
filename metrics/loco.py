"""MVTec LOCO AD subsets: logical / structural anomalies (each with all good images) and their mean.

Returns the nesting of the official ``metrics.json``: ``classification.auc_roc.<subset>`` and
``localization.auc_spro.<subset>.<limit>`` with limits written as ``str(float)`` ("0.01", ..., "1.0").
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._checks import MetricInputError
from .ranking import image_auroc
from .spro import LOCO_LIMITS, Channels, au_spro

SUBSETS = ("logical_anomalies", "structural_anomalies")


def loco_classification(anomaly_types: Sequence[str], scores) -> dict[str, float]:
    """Image AUROC good vs logical, good vs structural, and their mean; scores (N,) (the official: map maximum)."""
    types = np.asarray(anomaly_types)
    scores = np.asarray(scores)
    if types.shape != scores.shape:
        raise MetricInputError(f"{types.size} anomaly types but {scores.size} scores")
    out = {}
    for subset in SUBSETS:
        keep = (types == "good") | (types == subset)
        out[subset] = image_auroc((types[keep] == subset).astype(np.uint8), scores[keep])
    out["mean"] = (out[SUBSETS[0]] + out[SUBSETS[1]]) / 2.0
    return out


def loco_localization(maps: Sequence[np.ndarray], anomaly_types: Sequence[str], channels: Sequence[Channels],
                      limits=LOCO_LIMITS) -> dict[str, dict[str, float]]:
    """AU-sPRO per subset and limit, and the mean of the two subsets: {subset: {str(limit): value}}."""
    if not len(maps) == len(anomaly_types) == len(channels):
        raise MetricInputError("maps, anomaly types and channels must have one entry per image")
    out = {}
    for subset in SUBSETS:
        keep = [i for i, t in enumerate(anomaly_types) if t in ("good", subset)]
        values = au_spro([maps[i] for i in keep], [channels[i] for i in keep], limits)
        out[subset] = {str(float(lim)): v for lim, v in values.items()}
    out["mean"] = {key: (out[SUBSETS[0]][key] + out[SUBSETS[1]][key]) / 2.0 for key in out[SUBSETS[0]]}
    return out


def image_scores_max(maps: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) float64: the maximum of each map (the image score of the official scripts)."""
    return np.array([float(np.max(m)) for m in maps], np.float64)
