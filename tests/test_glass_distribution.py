"""The built-in manifold/hypersphere table (glass.md §2) and --distribution meanings, and the FFT judge's decision
on a flat and a periodic image."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import UserError
from glass.distribution import fft_judge, resolve_svd


@pytest.mark.parametrize("dataset,cls,svd", [
    ("mvtec", "bottle", 1), ("mvtec", "screw", 1), ("mvtec", "carpet", 0), ("mvtec", "toothbrush", 0),
    ("visa", "pcb4", 1), ("visa", "pcb3", 0), ("visa", "pipe_fryum", 1), ("mpdd", "tubes", 0),
    ("wfdd", "pink_flower", 0), ("mad-sys", "carpet", 0),
])
def test_table(dataset, cls, svd):
    assert resolve_svd(0, dataset, cls) == svd
    assert resolve_svd(4, dataset, cls) == 1 - svd
    assert resolve_svd(2, dataset, cls) == 0 and resolve_svd(3, dataset, cls) == 1
    assert resolve_svd(1, dataset, cls) is None  # the judge decides


def test_unknown_class_needs_an_explicit_choice():
    with pytest.raises(UserError, match="--distribution"):
        resolve_svd(0, "mvtec", "my_part")
    assert resolve_svd(2, "folder", "my_part") == 0


def test_fft_judge_flat_vs_periodic():
    flat = np.full((256, 256, 3), 128, np.uint8)
    flag_flat, stats_flat = fft_judge(flat)
    assert flag_flat == 0 and stats_flat["n"] <= 1  # only the DC term is bright
    y, x = np.mgrid[0:256, 0:256]
    stripes = (127 + 120 * np.sin(2 * np.pi * x / 64) * np.sin(2 * np.pi * y / 64)).astype(np.uint8)
    flag, stats = fft_judge(np.repeat(stripes[..., None], 3, axis=2))
    assert stats["n"] > stats_flat["n"] and stats["radius"] > 0
