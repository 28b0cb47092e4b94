"""Input validation shared by the metric functions.

Shapes: ``labels``/``scores`` (N,), ``masks``/``maps`` (N, H, W). Bad arrays raise :class:`MetricInputError`, which is
both a ``common.errors.UserError`` (the CLI prints it) and a ``ValueError`` (what array code expects).
"""
from __future__ import annotations

import warnings

import numpy as np

from common.errors import UserError


class MetricInputError(UserError, ValueError):
    """Arrays given to a metric have the wrong shape, dtype or values."""


def undefined(reason: str) -> float:
    """The value of a metric that is undefined on this input: NaN, with a warning saying why."""
    warnings.warn(f"metric undefined: {reason}; returning NaN", RuntimeWarning, stacklevel=3)
    return float("nan")


def as_scores(values, name: str = "scores") -> np.ndarray:
    """A float32/float64 array (other dtypes become float64); torch tensors are moved to the CPU."""
    array = _to_numpy(values)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32 if array.dtype == np.float16 else np.float64)
    return array


def as_binary(values, name: str) -> np.ndarray:
    """A bool array from a bool or {0, 1} array; anything else is not a binary mask."""
    array = _to_numpy(values)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.integer):
        binary = not array.size or (array.min() >= 0 and array.max() <= 1)
    else:
        binary = bool(np.all((array == 0) | (array == 1)))
    if not binary:
        found = np.unique(array)[:6].tolist()
        raise MetricInputError(f"{name} must be binary (bool or 0/1), found values {found}; "
                               "binarise the ground truth first (datasets.preprocess.binarize_gt)")
    return array.astype(bool)


def check_stack(masks: np.ndarray, maps: np.ndarray) -> None:
    if maps.ndim != 3:
        raise MetricInputError(f"anomaly maps must have shape (N, H, W), got {maps.shape}")
    if masks.shape != maps.shape:
        raise MetricInputError(f"masks {masks.shape} and anomaly maps {maps.shape} differ in shape")


def check_vector(labels: np.ndarray, scores: np.ndarray) -> None:
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise MetricInputError(f"labels {labels.shape} and scores {scores.shape} must be 1-D of equal length")


def all_finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).all())


def _to_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values)
