"""The per-class evaluation data the report is drawn from: ``<results>/eval/<dataset>_<class>/report_data.npz``.

It holds what a page needs and nothing it can recompute cheaply: per test image the score, label, path and anomaly
type, small thumbnails (image, ground truth, anomaly map, at most ``THUMB`` pixels a side); the image ROC, pixel ROC
and exact PRO curves computed at the evaluation resolution (decimated for drawing); the stored threshold; the
per-epoch training history (JSON). Loaded with ``allow_pickle=False`` (nothing read from disk runs code).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from common.atomic import atomic_save_npz

FILE_NAME = "report_data.npz"
THUMB = 128
CURVE_POINTS = 600


def data_path(results_path: Path, name: str) -> Path:
    return Path(results_path) / "eval" / name / FILE_NAME


def _thumb_size(h: int, w: int) -> tuple[int, int]:
    scale = min(1.0, THUMB / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _decimate(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``points`` vertices (first and last included) of a monotone curve, for drawing only."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.r_[np.linspace(0, len(x) - 1, points).round().astype(int), len(x) - 1])
    return x[keep], y[keep]


def _curves(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray, maps: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.metrics import roc_curve

    import metrics

    out: dict[str, np.ndarray] = {}
    if len(set(labels.tolist())) == 2:
        fpr, tpr, _ = roc_curve(labels, scores)
        out["image_roc"] = np.stack(_decimate(fpr, tpr)).astype(np.float64)
    if masks.any() and not masks.all():
        fpr, tpr, _ = roc_curve(masks.reshape(-1).astype(np.uint8), maps.reshape(-1))
        out["pixel_roc"] = np.stack(_decimate(fpr, tpr)).astype(np.float64)
        fpr, pro = metrics.pro_curve(masks, maps)
        if len(fpr):
            out["pro"] = np.stack(_decimate(fpr, pro)).astype(np.float64)
    return out


def write_class_data(results_path: Path, name: str, pred, threshold: float | None, images: Sequence[np.ndarray],
                     history: list[dict] | None = None) -> Path:
    """``pred``: the ``common.results.Predictions`` of the evaluated (best) checkpoint; ``images``: the test images
    as (H, W, 3) uint8 at the evaluation resolution, in ``pred`` order; ``history``: per-epoch training records
    (kept from the previous file when None, e.g. for ``--test test``)."""
    path = data_path(results_path, name)
    if history is None and path.is_file():
        history = read_class_data(path).get("history")
    n, h, w = pred.maps.shape
    size = _thumb_size(h, w)
    thumbs = np.zeros((n, size[1], size[0], 3), np.uint8)
    small_maps = np.zeros((n, size[1], size[0]), np.float16)
    small_masks = np.zeros((n, size[1], size[0]), np.uint8)
    for i, image in enumerate(images):
        thumbs[i] = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
        small_maps[i] = cv2.resize(pred.maps[i].astype(np.float32), size, interpolation=cv2.INTER_AREA)
        small_masks[i] = cv2.resize(pred.masks[i].astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    arrays = {
        "scores": np.asarray(pred.scores, np.float64), "labels": np.asarray(pred.labels, np.int64),
        "paths": np.asarray([str(p) for p in pred.image_paths]), "kinds": np.asarray(list(pred.anomaly_types)),
        "thumbs": thumbs, "maps": small_maps, "masks": small_masks,
        "map_range": np.asarray([float(pred.maps.min()), float(pred.maps.max())]),
        "eval_size": np.asarray([h, w], np.int64),
        "threshold": np.asarray(np.nan if threshold is None else float(threshold)),
        "history": np.asarray(json.dumps(history or [])),
        **_curves(np.asarray(pred.labels), np.asarray(pred.scores), np.asarray(pred.masks), pred.maps),
    }
    return atomic_save_npz(path, **arrays)


def read_class_data(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        out = {key: data[key] for key in data.files}
    out["history"] = json.loads(str(out["history"]))
    out["threshold"] = float(out["threshold"])
    out["threshold"] = None if np.isnan(out["threshold"]) else out["threshold"]
    out["paths"] = [str(p) for p in out["paths"]]
    out["kinds"] = [str(k) for k in out["kinds"]]
    return out


def dataset_images(dataset, preprocessing):
    """The test images of a ``datasets.TestDataset`` as (H, W, 3) uint8 at the evaluation resolution, lazily."""
    from runner.results import denormalize

    for index in range(len(dataset)):
        yield denormalize(dataset[index]["image"].numpy(), preprocessing.mean, preprocessing.std)
