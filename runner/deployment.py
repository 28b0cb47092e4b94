"""A trained model's record: method, config, preprocessing and decision threshold.

It is stored in two places: inside the checkpoint (key ``toolkit``, plain types beside the reference keys; for
SLSG in ``<name>_last.tch``, so that ``<name>.tch`` stays the reference's bare state dict) and, readable by people,
in ``toolkit.json`` beside it. The threshold is F1-max on the test set when there is one, otherwise a high quantile
of scores on held-out good images. A reference checkpoint has neither: then the flags given are used.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import metrics
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


def write_deployment(checkpoint: Path, description: dict, preprocessing: dict, threshold: float | None,
                     threshold_rule: str) -> Path:
    """``description``: the method's ``description()`` (method, config, class_name, dataset)."""
    record = {**description, "preprocessing": preprocessing,
              "threshold": None if threshold is None else float(threshold), "threshold_rule": threshold_rule}
    return atomic_write_text(deployment_path(checkpoint), json.dumps(record, indent=2) + "\n")


def read_deployment(checkpoint: Path) -> dict | None:
    path = deployment_path(checkpoint)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if "config" not in record and "args" in record:  # written before typed configs
        record["config"] = record.pop("args")
        record.setdefault("class_name", record["config"].get("class_name"))
    return record


def f1_max_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the largest F1 (anomalous = score >= threshold), as ``metrics.f1_max``."""
    return float(metrics.f1_max(np.asarray(labels), np.asarray(scores, np.float64))[1])


def held_out_threshold(good_scores: np.ndarray, quantile: float = HELD_OUT_QUANTILE) -> float:
    """Without anomalies to calibrate on: a high quantile of the scores of held-out good images."""
    return float(np.quantile(np.asarray(good_scores, np.float64), quantile))
