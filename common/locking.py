"""Locks between concurrent runs, on ``flock`` through the ``filelock`` library.

* ``hold_model_folder(path)``: held while a process trains or evaluates one class's model. A second holder stops at
  once with a ``UserError`` naming the first (pid, host, start time, from a sidecar ``.lock.json``). The kernel
  releases ``flock`` when the holder dies, so a lock left by a killed process never blocks.
* ``exclusive(path)``: a short waiting lock around a read-modify-write of a shared file (``results.csv``).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from common.atomic import atomic_write_text
from common.errors import UserError

SHARED_FILE_WAIT_S = 120.0


def lock_paths(model_path: Path) -> tuple[Path, Path]:
    """``<parent>/.<name>.lock`` and its ``.lock.json`` holder record, beside a model folder or file."""
    model_path = Path(model_path)
    lock = model_path.parent / f".{model_path.name}.lock"
    return lock, lock.with_name(lock.name + ".json")


def describe_holder(info_path: Path) -> str:
    try:
        info = json.loads(info_path.read_text())
        return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (no holder record yet)"


@contextmanager
def hold_model_folder(model_path: Path) -> Iterator[Path]:
    """Hold ``model_path`` (a checkpoint folder or file) for this process; ``UserError`` if another run holds it."""
    lock_path, info_path = lock_paths(model_path)
    new_dirs = [d for d in (lock_path.parent, *lock_path.parent.parents) if not d.exists()]
    lock_file_existed = lock_path.exists()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{model_path} is in use by another run ({describe_holder(info_path)}); wait for it to "
                        f"finish, or use another --results_path (lock file {lock_path})") from None
    try:
        atomic_write_text(info_path, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}, indent=2) + "\n")
        yield model_path
    finally:
        info_path.unlink(missing_ok=True)
        lock.release()
        if not lock_file_existed and not Path(model_path).exists():
            _remove_unused(lock_path, new_dirs)


def _remove_unused(lock_path: Path, new_dirs: list[Path]) -> None:
    """A run that stopped before writing its model (bad input) leaves nothing behind: not the lock file it
    created, nor the folders made for it."""
    lock_path.unlink(missing_ok=True)
    for folder in new_dirs:  # innermost first
        try:
            folder.rmdir()
        except OSError:
            break


@contextmanager
def exclusive(path: Path, wait_s: float = SHARED_FILE_WAIT_S) -> Iterator[Path]:
    """Hold ``.<name>.lock`` beside ``path`` for a short read-modify-write, waiting up to ``wait_s`` for others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.parent / f".{path.name}.lock", timeout=wait_s)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{path}: still locked by another run after {wait_s:.0f} s (lock file "
                        f"{lock.lock_file})") from None
    try:
        yield path
    finally:
        lock.release()
