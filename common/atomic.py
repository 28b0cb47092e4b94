"""Atomic file writes: write a temporary sibling, flush to disk, then rename over the target.

A reader (or a crash) never sees a half-written file: the target is either the old file or the new one. The
file gets the permissions of a normally created one under the user's umask (``mkstemp`` makes 0600).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it, which would race with threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, newline: str | None = None) -> Path:
    if newline is not None:
        text = text.replace("\n", newline)
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    from common.checkpoint_io import check_loadable

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    check_loadable(buffer.getvalue(), path)  # what is saved must load with weights_only=True
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npz(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_write_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 (H,W) or (H,W,3 RGB) array as PNG/JPEG, chosen by the suffix."""
    from PIL import Image

    path = Path(path)
    buffer = io.BytesIO()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.fromarray(np.asarray(array)).save(buffer, format=fmt)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_write_tiff(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a float32 (H,W) map as a TIFF, the format of the official MVTec evaluation scripts."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.asarray(array, dtype=np.float32))
    return atomic_write_bytes(path, buffer.getvalue())


def check_writable(folder: str | os.PathLike, flag: str) -> Path:
    """Make ``folder`` and prove it writable now, before long work; a ``UserError`` naming ``flag`` otherwise."""
    from common.errors import UserError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"{flag}: cannot write to {folder} ({error.strerror or error})") from error
    return folder
