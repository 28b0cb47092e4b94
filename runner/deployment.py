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
    """``description``: the method's ``description()`` (method, config, class_name, dataset). Written into the
    checkpoint files (``toolkit``) and to ``toolkit.json``."""
    record = {**description, "preprocessing": preprocessing,
              "threshold": None if threshold is None else float(threshold), "threshold_rule": threshold_rule}
    for file in _record_files(Path(checkpoint)):
        _embed(file, record)
    return atomic_write_text(deployment_path(checkpoint), json.dumps(record, indent=2) + "\n")


def _record_files(checkpoint: Path) -> list[Path]:
    """The toolkit's own checkpoint files of a model: GLASS ``ckpt.pth`` and ``ckpt_best_*.pth``, SLSG
    ``<name>_last.tch`` (the best ``.tch`` stays the reference's bare state dict)."""
    if checkpoint.is_dir():
        return [p for p in [checkpoint / "ckpt.pth", *sorted(checkpoint.glob("ckpt_best_*.pth"))] if p.is_file()]
    if checkpoint.suffix == ".tch":
        stem = checkpoint.stem[:-5] if checkpoint.stem.endswith("_last") else checkpoint.stem
        last = checkpoint.with_name(f"{stem}_last.tch")
        return [last] if last.is_file() else []
    return []


def _embed(file: Path, record: dict) -> None:
    import torch

    from common.atomic import atomic_torch_save
    from common.checkpoint_io import safe_torch_load

    state = safe_torch_load(file, "checkpoint")
    if not isinstance(state, dict):
        return
    if "discriminator" in state:
        state["toolkit"] = record
    elif isinstance(state.get("extra"), dict):
        state["extra"]["toolkit"] = record
    else:
        return
    atomic_torch_save(state, file)


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
