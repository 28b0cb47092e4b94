"""The one way the toolkit reads a torch file: ``torch.load(..., weights_only=True)``.

Nothing read from disk may run code. A checkpoint therefore holds only tensors, numbers, strings, bools, None,
lists, tuples and dicts (``atomic_torch_save`` refuses anything else at save time); a file that needs more (a
pickled class, a ``__reduce__`` payload) is refused with one error naming it, and its payload never runs.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError


class UnsafeCheckpointError(UserError):
    """A file that a weights-only load refuses: never skipped silently, even where a missing file would be."""


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load ``path`` with ``weights_only=True`` onto the CPU; any failure is a ``UserError`` naming the file."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # garbage bytes, not a reference to code
            raise UserError(f"{what} {path}: cannot read it (not a PyTorch file, or corrupt: {_reason(exc)})") from exc
        raise UnsafeCheckpointError(f"{what} {path}: holds objects other than tensors, numbers, strings, lists and dicts; "
                        f"refusing to load it, since loading could run code ({_reason(exc)})") from exc
    except FileNotFoundError as exc:
        raise UserError(f"{what} {path}: file not found") from exc
    except Exception as exc:  # corrupt, truncated, not a torch file
        raise UserError(f"{what} {path}: cannot read it ({exc.__class__.__name__}: {exc})") from exc


def check_loadable(data: bytes, path: str | os.PathLike) -> None:
    """Prove serialised ``data`` loads with ``weights_only=True`` before it is written to ``path``."""
    import io

    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TypeError(f"refusing to save {path}: it holds objects that a weights_only load rejects; convert "
                        f"them to tensors, numbers, strings, lists or dicts ({_reason(exc)})") from exc


def _reason(exc: Exception) -> str:
    """The line of torch's message that says what was refused (not its advice to load unsafely)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    refused = [line for line in lines if "unsupported" in line.lower()]
    return (refused or ["not a weights-only file"])[0]
