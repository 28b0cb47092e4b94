"""Checkpoint files, in the reference layout and keys (glass.md §5.3).

``<results>/models/backbone_0/<dataset>_<class>/ckpt_best_<epoch>.pth`` (one file: the previous best is deleted)
and ``ckpt.pth`` (latest, rewritten every epoch). Both are ``torch.save`` dicts holding the ``discriminator`` and
``pre_projection`` state dicts; this toolkit adds keys (``epoch``, optimiser states, best record, history, config)
that the reference ignores, and ignores keys it does not know, so files go both ways.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from common.atomic import atomic_torch_save
from common.checkpoint_io import safe_torch_load
from common.errors import UserError

BEST_PATTERN = re.compile(r"ckpt_best_(\d+)\.pth$")
LATEST = "ckpt.pth"


def checkpoint_dir(results_path: Path, dataset: str, cls_name: str, backbone_index: int = 0) -> Path:
    return Path(results_path) / "models" / f"backbone_{backbone_index}" / f"{dataset}_{cls_name}"


def best_files(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for path in Path(folder).glob("ckpt_best_*.pth"):
        match = BEST_PATTERN.search(path.name)
        if match:
            found.append((int(match[1]), path))
    return sorted(found)


def find_best(folder: Path) -> tuple[int, Path]:
    """The best checkpoint with the highest epoch (the reference takes glob()[0]); warns if there are several."""
    found = best_files(folder)
    if not found:
        raise UserError(f"no ckpt_best_<epoch>.pth in {folder}; train first with --test ckpt")
    if len(found) > 1:
        warnings.warn(f"{folder}: {len(found)} ckpt_best files; using the highest epoch {found[-1][0]}", stacklevel=2)
    return found[-1]


def read(path: Path) -> dict:
    state = safe_torch_load(path, "GLASS checkpoint")
    if not isinstance(state, dict) or "discriminator" not in state:
        raise UserError(f"{path} is not a GLASS checkpoint (no 'discriminator' entry)")
    return state


def save_best(folder: Path, state: dict, epoch: int) -> Path:
    """Write ckpt_best_<epoch>.pth atomically, then delete the other best files."""
    path = Path(folder) / f"ckpt_best_{epoch}.pth"
    atomic_torch_save(state, path)
    for other_epoch, other in best_files(folder):
        if other_epoch != epoch:
            other.unlink(missing_ok=True)
    return path


def save_latest(folder: Path, state: dict) -> Path:
    return atomic_torch_save(state, Path(folder) / LATEST)


def _input_width(state_dict: dict) -> int | None:
    """The embedding width a discriminator reads: the input size of its first Linear (registration order)."""
    for value in state_dict.values():
        if torch.is_tensor(value) and value.ndim == 2:
            return int(value.shape[1])
    return None


def load_heads(state: dict, projection, discriminator, path: Path) -> None:
    """Load the two state dicts into the modules; a shape mismatch names the flags that set the shapes."""
    stored, built = _input_width(state["discriminator"]), _input_width(discriminator.state_dict())
    if stored is not None and built is not None and stored != built:
        raise UserError(f"{path} does not fit the model built from the flags: it was trained with embedding width "
                        f"--target_embed_dimension {stored}, the flags build width {built} (pass "
                        f"--target_embed_dimension {stored})")
    try:
        discriminator.load_state_dict(state["discriminator"])
        if projection is not None:
            if "pre_projection" not in state:
                raise UserError(f"{path} has no 'pre_projection' (trained with --pre_proj 0?)")
            projection.load_state_dict(state["pre_projection"])
    except RuntimeError as exc:
        raise UserError(f"{path} does not fit the model built from the flags (check --target_embed_dimension, "
                        f"--dsc_layers, --dsc_hidden, --pre_proj, -b and -le): {str(exc).splitlines()[0]}") from exc
