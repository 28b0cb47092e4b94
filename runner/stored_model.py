"""What a checkpoint says about itself: which method wrote it, and the config, preprocessing and threshold it
was trained and calibrated with; and the rule that a stored model is only ever used with its own settings."""
from __future__ import annotations

from pathlib import Path

import torch

from common.checkpoint_io import safe_torch_load
from common.errors import UserError
from runner.deployment import read_deployment


def _read(path: Path) -> object:
    return safe_torch_load(path, "--checkpoint:")


def detect_method(checkpoint: Path) -> str:
    """Which method wrote a checkpoint (file or folder), from its record, file names and keys."""
    checkpoint = Path(checkpoint)
    deployment = read_deployment(checkpoint) if checkpoint.exists() else None
    if deployment and deployment.get("method"):
        return deployment["method"]
    if checkpoint.is_dir():
        if list(checkpoint.glob("ckpt_best_*.pth")) or (checkpoint / "ckpt.pth").is_file():
            return "glass"
        if list(checkpoint.glob("*.tch")):
            return "slsg"
        raise UserError(f"--checkpoint: no GLASS (ckpt_best_*.pth, ckpt.pth) or SLSG (*.tch) checkpoint in {checkpoint}")
    if not checkpoint.is_file():
        raise UserError(f"--checkpoint: not found: {checkpoint}")
    state = _read(checkpoint)
    if isinstance(state, dict) and isinstance(state.get("toolkit"), dict) and state["toolkit"].get("method"):
        return state["toolkit"]["method"]
    if isinstance(state, dict) and "discriminator" in state:
        return "glass"
    if isinstance(state, dict) and any(str(k).startswith("encoder_segment.") for k in state):
        return "slsg"
    if isinstance(state, dict) and str(state.get("format", "")).startswith("slsg"):
        return "slsg"  # the toolkit's resumable `_last.tch` (model + optimiser + step)
    raise UserError(f"--checkpoint: {checkpoint} is neither a GLASS nor an SLSG checkpoint")


def _embedded_record_file(checkpoint: Path) -> Path | None:
    """The file whose ``toolkit`` key describes the model: GLASS ``ckpt.pth`` (or the best file), SLSG
    ``<name>_last.tch``."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        candidates = [checkpoint / "ckpt.pth", *sorted(checkpoint.glob("ckpt_best_*.pth"))]
        candidates += [p.with_name(f"{p.stem}_last.tch") for p in sorted(checkpoint.glob("*.tch"))
                       if not p.stem.endswith("_last")]
    elif checkpoint.suffix == ".tch":
        stem = checkpoint.stem[:-5] if checkpoint.stem.endswith("_last") else checkpoint.stem
        candidates = [checkpoint.with_name(f"{stem}_last.tch")]
    else:
        candidates = [checkpoint]
    return next((p for p in candidates if p.is_file()), None)


def stored_description(checkpoint: Path) -> dict | None:
    """The model's record: the ``toolkit`` entry inside the checkpoint (method, config, preprocessing, threshold),
    else ``toolkit.json`` beside it (checkpoints written before records were embedded); None for a reference
    checkpoint that has neither."""
    file = _embedded_record_file(checkpoint)
    state = _read(file) if file is not None else None
    if isinstance(state, dict):
        embedded = state.get("toolkit") or (state.get("extra") or {}).get("toolkit")
        if isinstance(embedded, dict) and embedded.get("config"):
            stored = {**embedded, "preprocessing": embedded.get("preprocessing") or state.get("preprocessing")}
            if "threshold" in stored:
                return stored
            sidecar = read_deployment(checkpoint) or {}
            return {**stored, "threshold": sidecar.get("threshold"),
                    "threshold_rule": sidecar.get("threshold_rule", "none")}
    return read_deployment(checkpoint)


def _show(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def reconcile(config_class: type, config, given: dict, stored: dict | None, advice: str):
    """The config to rebuild a stored model with: its stored model settings, unless a flag given on the command
    line contradicts one, which is refused with one message listing every difference. ``advice``: how to start
    over (e.g. ``--retrain``)."""
    if not stored or not isinstance(stored.get("config"), dict):
        return config
    kept = stored["config"]
    current = config.to_dict()
    differing = [name for name in config_class.MODEL_FIELDS
                 if name in given and name in kept and current[name] != kept[name]
                 and not (isinstance(kept[name], list) and list(current[name] or []) == kept[name])]
    if differing:
        listed = "; ".join(f"--{n} {_show(current[n])}: the checkpoint was trained with --{n} {_show(kept[n])}"
                           for n in differing)
        raise UserError(f"{listed} (leave the flag{'s' if len(differing) > 1 else ''} out to use the stored "
                        f"value{'s' if len(differing) > 1 else ''}{advice})")
    # every stored setting not given again is kept (the backbone weights file included); the machine's
    # worker count is not a setting of the model
    merged = {**current, **{n: v for n, v in kept.items() if n in current and n not in given and n != "num_workers"}}
    return config_class.from_flags(merged)
