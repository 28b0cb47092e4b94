"""What a trained model needs to be used without its training flags: ``toolkit.json`` beside the checkpoint.

It records the method, every flag value the model was built with, the preprocessing, and the decision threshold
(F1-max on the test set when there is one, otherwise a high quantile of scores on held-out good images). A
reference checkpoint has no such file: then the flags given on the command line are used.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_text

DEPLOYMENT_FILE = "toolkit.json"
HELD_OUT_QUANTILE = 0.99


def deployment_path(checkpoint: Path) -> Path:
    """The sidecar of a checkpoint folder (GLASS) or file (SLSG: ``<name>.tch`` -> ``<name>.toolkit.json``)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return checkpoint / DEPLOYMENT_FILE
    if checkpoint.suffix == ".tch":
        stem = checkpoint.stem[:-5] if checkpoint.stem.endswith("_last") else checkpoint.stem
        return checkpoint.with_name(f"{stem}.{DEPLOYMENT_FILE}")
    return checkpoint.parent / DEPLOYMENT_FILE


def write_deployment(checkpoint: Path, method: str, args: dict, preprocessing: dict, threshold: float | None,
                     threshold_rule: str) -> Path:
    keep = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool, list, type(None)))}
    record = {"method": method, "args": keep, "preprocessing": preprocessing,
              "threshold": None if threshold is None else float(threshold), "threshold_rule": threshold_rule}
    return atomic_write_text(deployment_path(checkpoint), json.dumps(record, indent=2) + "\n")


def read_deployment(checkpoint: Path) -> dict | None:
    path = deployment_path(checkpoint)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def f1_max_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the largest F1 (anomalous = score >= threshold)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def held_out_threshold(good_scores: np.ndarray, quantile: float = HELD_OUT_QUANTILE) -> float:
    """Without anomalies to calibrate on: a high quantile of the scores of held-out good images."""
    return float(np.quantile(np.asarray(good_scores, np.float64), quantile))
