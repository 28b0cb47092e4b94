"""Bounded evaluation memory: common/mapstore.py spills to a memory-mapped file; metrics/pro_stream.py stays exact."""
from __future__ import annotations

import os

import numpy as np
import pytest

import metrics
from common import mapstore
from metrics.pro_stream import au_pro_bounded, au_pro_stream


def _stack(n: int, size: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        if i % 3 == 0:
            continue
        y, x = rng.integers(0, size - 6, 2)
        masks[i, y:y + rng.integers(2, 6), x:x + rng.integers(2, 6)] = 1
        if i % 4 == 1:  # a second region in some images
            masks[i, 0:2, 0:3] = 1
    maps = rng.random((n, size, size)).astype(np.float32) + 0.6 * masks
    if ties:
        maps = np.round(maps * 20) / 20
    return masks, maps.astype(np.float32)


def test_budget_keeps_small_arrays_in_ram_and_spills_past_it(tmp_path):
    budget = mapstore.RamBudget(max_ram_mb=1.0, folder=str(tmp_path))
    small = budget.zeros((4, 64, 64), np.float32)  # 64 KiB
    assert not mapstore.is_spilled(small) and budget.used == 4 * 64 * 64 * 4
    big = budget.zeros((100, 64, 64), np.float32)  # 1.6 MB > what is left
    assert mapstore.is_spilled(big) and budget.spilled == 1
    assert big.shape == (100, 64, 64) and big.dtype == np.float32 and not big.any()
    big[7] = 3.5
    assert float(big[7].sum()) == 3.5 * 64 * 64
    assert os.listdir(tmp_path) == []  # the file is unlinked as soon as it is mapped


def test_default_budget_is_settable():
    try:
        mapstore.set_default_max_ram_mb(0)
        assert mapstore.is_spilled(mapstore.RamBudget().zeros((2, 8, 8), np.uint8))
    finally:
        mapstore.set_default_max_ram_mb(mapstore.DEFAULT_MAX_RAM_MB)
    assert not mapstore.is_spilled(mapstore.RamBudget().zeros((2, 8, 8), np.uint8))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_stream_au_pro_equals_in_ram_au_pro(ties, chunk):
    masks, maps = _stack(23, 32, seed=3, ties=ties)
    limits = (0.01, 0.05, 0.3, 1.0)
    expected = metrics.au_pro_many(masks.astype(bool), maps, limits)
    got = au_pro_stream(masks, maps, limits, chunk=chunk)
    for lim in limits:
        assert got[lim] == pytest.approx(expected[lim], rel=1e-12, abs=1e-15)


def test_au_pro_equal_in_ram_and_memmapped(tmp_path):
    masks, maps = _stack(17, 40, seed=5)
    budget = mapstore.RamBudget(max_ram_mb=0, folder=str(tmp_path))
    mm_maps, mm_masks = budget.zeros(maps.shape, np.float32), budget.zeros(masks.shape, np.uint8)
    mm_maps[:], mm_masks[:] = maps, masks
    assert mapstore.is_spilled(mm_maps) and mapstore.is_spilled(mm_masks)
    in_ram = metrics.au_pro(masks, maps)
    assert metrics.au_pro(mm_masks, mm_maps) == in_ram
    assert au_pro_bounded(mm_masks, mm_maps, chunk=4) == pytest.approx(in_ram, rel=1e-12)


def test_stream_au_pro_known_values():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2, :2] = 1
    perfect = masks.astype(np.float32)
    assert au_pro_bounded(masks, perfect) == pytest.approx(1.0)
    with pytest.warns(RuntimeWarning):
        assert np.isnan(au_pro_bounded(np.zeros_like(masks), perfect))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_bounded_metric_row_equals_evaluate_all(ties, chunk):
    from metrics.bounded import evaluate_all_bounded

    masks, maps = _stack(25, 32, seed=11, ties=ties)
    labels = masks.reshape(len(masks), -1).any(1).astype(np.int64)
    scores = maps.reshape(len(maps), -1).max(1)
    expected = metrics.evaluate_all(labels, scores, masks, maps)
    got = evaluate_all_bounded(labels, scores, masks, maps, chunk=chunk)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key


def test_bounded_metric_row_on_memmaps_and_undefined_cases(tmp_path):
    from metrics.bounded import evaluate_all_bounded

    masks, maps = _stack(9, 24, seed=12)
    labels = masks.reshape(9, -1).any(1).astype(np.int64)
    scores = maps.reshape(9, -1).max(1)
    budget = mapstore.RamBudget(max_ram_mb=0, folder=str(tmp_path))
    mm_maps, mm_masks = budget.zeros(maps.shape, np.float32), budget.zeros(masks.shape, np.uint8)
    mm_maps[:], mm_masks[:] = maps, masks
    got = evaluate_all_bounded(labels, scores, mm_masks, mm_maps, chunk=2)
    expected = metrics.evaluate_all(labels, scores, masks, maps)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
    with pytest.warns(RuntimeWarning):
        row = evaluate_all_bounded(labels, scores, np.zeros_like(masks), maps)
    assert np.isnan(row["pixel_auroc"]) and np.isnan(row["au_pro"]) and not np.isnan(row["image_auroc"])
    bad = maps.copy()
    bad[3, 1, 1] = np.nan
    with pytest.warns(RuntimeWarning):
        assert np.isnan(evaluate_all_bounded(labels, scores, masks, bad)["pixel_pro"])


def test_cli_evaluation_is_the_same_with_spilled_maps(tmp_path, monkeypatch):
    import csv

    import main
    import metrics.bounded
    from tests.cli_helpers import tiny_demo, tiny_glass_flags

    demo = tiny_demo(tmp_path / "data")
    results = tmp_path / "res"
    flags = tiny_glass_flags(demo, results) + ["--classes", "brick"]
    assert main.main(flags) == 0

    def row() -> dict:
        with open(results / "results.csv", newline="") as handle:
            return {r["Row Names"]: r for r in csv.DictReader(handle)}["mvtec_brick"]

    in_ram = row()
    calls = []
    original = metrics.bounded.evaluate_all_bounded
    monkeypatch.setattr(metrics.bounded, "evaluate_all_bounded", lambda *a, **k: calls.append(1) or original(*a, **k))
    try:
        assert main.main(flags + ["--test", "test", "--max_eval_ram_mb", "0"]) == 0
    finally:
        mapstore.set_default_max_ram_mb(mapstore.DEFAULT_MAX_RAM_MB)
    spilled = row()
    assert calls  # the spilled maps went through the bounded-memory metrics
    for key in ("image_auroc", "pixel_auroc", "au_pro", "pixel_pro", "pixel_ap"):
        assert float(spilled[key]) == pytest.approx(float(in_ram[key]), rel=1e-9), key
