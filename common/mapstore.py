"""Bounded memory for per-image arrays of a whole test set: in RAM up to a budget, then a memory-mapped file.

Evaluation keeps one (H, W) map and mask per test image; at 288 px a 10,000-image test set is 3.3 GB of maps
(GLASS issue #58 reports 28 GB of host memory). ``RamBudget.zeros`` hands out a zero-filled array in RAM while the
budget allows and a ``numpy.memmap`` on a temporary file past it. The file is unlinked as soon as it is mapped,
so it disappears with the array (and with the process, however it ends); its pages are the kernel's page cache,
written back and evicted under memory pressure instead of growing the process's anonymous memory.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

DEFAULT_MAX_RAM_MB = 1024.0
_default_mb = DEFAULT_MAX_RAM_MB


def set_default_max_ram_mb(megabytes: float) -> None:
    """The budget used by ``RamBudget()`` without an argument (``--max_eval_ram_mb``)."""
    global _default_mb
    _default_mb = float(megabytes)


class RamBudget:
    """Hands out arrays; the first ones stay in RAM until ``max_ram_mb`` is used, the rest are memory-mapped."""

    def __init__(self, max_ram_mb: float | None = None, folder: str | None = None) -> None:
        self.max_bytes = int((_default_mb if max_ram_mb is None else float(max_ram_mb)) * 2 ** 20)
        self.folder = folder  # None: tempfile's default (TMPDIR)
        self.used = 0
        self.spilled = 0  # number of arrays that went to a file

    def zeros(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if self.used + size <= self.max_bytes or size == 0:
            self.used += size
            return np.zeros(shape, dtype)
        self.spilled += 1
        return spill_file(shape, dtype, self.folder)


def spill_file(shape: tuple[int, ...], dtype, folder: str | None = None) -> np.memmap:
    """A zero-filled (sparse) memory-mapped array on an already-unlinked temporary file."""
    handle, path = tempfile.mkstemp(prefix="ad-maps-", suffix=".dat", dir=folder)
    try:
        with os.fdopen(handle, "wb"):
            pass
        array = np.memmap(path, dtype=dtype, mode="w+", shape=shape)
    finally:
        os.unlink(path)
    return array


def is_spilled(array: np.ndarray) -> bool:
    return isinstance(array, np.memmap)
