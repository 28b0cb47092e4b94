"""benchmarks/selection_rules.py, the README's selection comparison: its rows are the test metrics of the models each
rule keeps, read from the runs' results.csv; the ``last`` row (the final epoch of the ``--select test`` run) equals
a separate ``--select last`` training, so evaluating on the test set during training does not change the model."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--pretrain_embed_dimension", "32", "--target_embed_dimension", "32", "--dsc_hidden", "32",
        "--meta_epochs", "2", "--step", "2", "--limit", "16", "--resize", "64", "--imagesize", "64"]


def _benchmark():
    spec = importlib.util.spec_from_file_location("selection_rules", REPO / "benchmarks" / "selection_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(path: Path) -> dict:
    with open(path / "results.csv", newline="") as handle:
        return next(csv.DictReader(handle))


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("selection_rules")
    bench = _benchmark()
    assert bench.main(["--data", "loco", "--method", "glass", "--seeds", "3", "--jobs", "1", "--size", "160",
                       "--out", str(out), "--", *TINY]) == 0
    return bench, out


def test_rows_are_the_kept_models_test_metrics(measured, capsys):
    bench, out = measured
    runs = out / "glass_loco"
    test, val = _row(runs / "test_s3"), _row(runs / "val_s3")
    assert test["selected_by"] == "test" and val["selected_by"] == "val (8 validation/good + 8 LAS)"
    summary = json.loads((runs / "summary.json").read_text())
    seed = summary["per_seed"]["3"]
    assert seed["test"]["image_auroc"] == pytest.approx(float(test["image_auroc"]), abs=1e-12)
    assert seed["last"]["au_pro"] == pytest.approx(float(test["last_au_pro"]), abs=1e-12)
    assert seed["val"]["pixel_auroc"] == pytest.approx(float(val["pixel_auroc"]), abs=1e-12)
    assert seed["val"]["image_auroc_logical"] == pytest.approx(float(val["image_auroc_logical"]), abs=1e-12)
    assert "image_auroc_logical" not in seed["last"]  # results.csv has no last-epoch LOCO split: shown as "–"
    assert summary["summary"]["val"]["image_auroc"] == [pytest.approx(float(val["image_auroc"])), 0.0]
    # a second call reuses the finished runs and prints the same table
    assert bench.main(["--data", "loco", "--method", "glass", "--seeds", "3", "--jobs", "1", "--size", "160",
                       "--out", str(out), "--", *TINY]) == 0
    printed = capsys.readouterr().out
    assert f"| `test` (best on test, optimistic) | {float(test['image_auroc']):.3f} ± 0.000" in printed


def test_last_row_equals_a_last_selected_training(measured, tmp_path):
    bench, out = measured
    assert json.loads((out / "glass_loco" / "summary.json").read_text())["extra"] == TINY
    test_run = _row(out / "glass_loco" / "test_s3")
    data = out / "data_loco"
    flags = [sys.executable, "main.py", "--method", "glass", "--test", "ckpt", "--dataset", "loco", "--datapath",
             str(data / "loco"), "--augpath", str(data / "dtd" / "images"), "--gpu", "-1", "--num_workers", "0",
             "--heatmaps", "0", "--tensorboard", "0", *bench.GLASS, *bench.DATA_FLAGS[("glass", "loco")], *TINY,
             "--seed", "3", "--select", "last", "--results_path", str(tmp_path / "last"),
             "--threads", str(bench.threads_for(1))]  # as the benchmark's run: the same float reductions
    assert subprocess.run(flags, cwd=REPO, capture_output=True).returncode == 0
    last = _row(tmp_path / "last")
    assert last["selected_by"] == "last"
    for metric in ("image_auroc", "pixel_auroc", "au_pro"):
        assert float(last[metric]) == pytest.approx(float(test_run[f"last_{metric}"]), abs=1e-6), metric
