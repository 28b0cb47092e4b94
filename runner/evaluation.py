"""Evaluation: run a model over a test loader, and assemble the metric row of one pass."""
from __future__ import annotations

import numpy as np

import metrics
from common.mapstore import is_spilled
from metrics import bounded
from runner.results import Predictions


def loader(dataset, batch_size: int, num_workers: int, shuffle: bool = False):
    import torch

    from common.threads import worker_init

    kwargs = dict(batch_size=batch_size, shuffle=shuffle, num_workers=num_workers)
    if num_workers > 0:
        kwargs.update(prefetch_factor=2, persistent_workers=False, worker_init_fn=worker_init)
    return torch.utils.data.DataLoader(dataset, **kwargs)


def predict_dataset(model, test_loader, desc: str = "test") -> Predictions:
    """Run the model over a test loader; maps are streamed into one preallocated float32 array (a memory-mapped
    temporary file past --max_eval_ram_mb)."""
    from tqdm import tqdm

    from common.mapstore import RamBudget

    n = len(test_loader.dataset)
    maps = masks = None
    scores = np.zeros(n, np.float64)
    labels = np.zeros(n, np.int64)
    paths: list[str] = []
    kinds: list[str] = []
    start = 0
    for batch in tqdm(test_loader, desc=desc, leave=False, disable=None):
        batch_scores, batch_maps = model.predict(batch["image"])
        b = len(batch_scores)
        if maps is None:
            h, w = batch_maps.shape[-2:]
            budget = RamBudget()
            maps = budget.zeros((n, h, w), np.float32)
            masks = budget.zeros((n, h, w), np.uint8)
        maps[start:start + b] = batch_maps
        gt = batch["mask"].numpy()[:, 0]
        if gt.shape[-2:] != maps.shape[-2:]:
            raise RuntimeError(f"map size {maps.shape[-2:]} differs from mask size {gt.shape[-2:]}")
        masks[start:start + b] = gt > 0.5
        scores[start:start + b] = batch_scores
        labels[start:start + b] = batch["label"].numpy()
        paths.extend(batch["image_path"])
        kinds.extend(batch["anomaly_type"])
        start += b
    return Predictions(paths, kinds, labels, scores, maps, masks)


def selection_metrics(pred: Predictions) -> dict:
    """Only what the per-epoch selection needs (as the reference: image and pixel AUROC)."""
    nan = float("nan")
    both = len(set(pred.labels.tolist())) == 2
    pixels = bool(pred.masks.any()) and not bool(pred.masks.all())
    if pixels and is_spilled(pred.maps):
        pixel = bounded.evaluate_all_bounded(pred.labels, pred.scores, pred.masks, pred.maps)["pixel_auroc"]
    else:
        pixel = metrics.pixel_auroc(pred.masks, pred.maps) if pixels else nan
    return {"image_auroc": metrics.image_auroc(pred.labels, pred.scores) if both else nan, "pixel_auroc": pixel}


def compute_metrics(pred: Predictions, full: bool = True, loco_truth: list | None = None) -> dict:
    """The metric row of one evaluation. ``full=False``: :func:`selection_metrics`. ``loco_truth``: per test
    image, the LOCO defect channels at the original resolution (``datasets.loco_ground_truth``); adds the
    logical / structural image AUROCs and AU-sPRO."""
    if not full:
        return selection_metrics(pred)
    evaluate_all = bounded.evaluate_all_bounded if is_spilled(pred.maps) else metrics.evaluate_all  # bounded memory
    row = evaluate_all(pred.labels, pred.scores, pred.masks, pred.maps)
    kinds = list(pred.anomaly_types)
    if {"logical_anomalies", "structural_anomalies"} <= set(kinds):
        row.update(loco_columns(pred, kinds, loco_truth))
    return row


def loco_columns(pred: Predictions, kinds: list[str], loco_truth: list | None) -> dict:
    classification = metrics.loco_classification(kinds, pred.scores)
    row = {"image_auroc_logical": classification["logical_anomalies"],
           "image_auroc_structural": classification["structural_anomalies"]}
    if loco_truth is None:
        return row
    import cv2

    maps, channels = [], []
    for anomaly_map, truth in zip(pred.maps, loco_truth):
        h, w = truth.merged.shape
        maps.append(cv2.resize(anomaly_map, (w, h), interpolation=cv2.INTER_LINEAR))
        channels.append([(c.mask, c.saturation_area) for c in truth.channels])
    spro = metrics.loco_localization(maps, kinds, channels, limits=(0.05,))
    row["au_spro_logical"] = spro["logical_anomalies"]["0.05"]
    row["au_spro_structural"] = spro["structural_anomalies"]["0.05"]
    row["au_spro_mean"] = spro["mean"]["0.05"]
    return row
