"""SLSG through main.py: the reference-format weights evaluated with --test test --checkpoint FILE."""
from __future__ import annotations

import csv
import json

from runner import cli as main


def test_cli_evaluates_reference_weights_on_loco_layout(fixtures_dir, tmp_path):
    root = fixtures_dir / "slsg-reference"
    meta = json.loads((root / "expected.json").read_text())
    results = tmp_path / "results"
    code = main.main(["--method", "slsg", "--dataset", "loco", "--datapath", str(root / "data"),
                      "--classes", "pushpins", "--test", "test", "--checkpoint", str(root / "pushpins.tch"),
                      "--results_path", str(results), "--num_workers", "0", "--heatmaps", "0", "--gpu", "-1",
                      "--batch_size", "6"])
    assert code == 0
    with open(results / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    row = rows[0]
    assert float(row["image_auroc"]) == meta["auroc_image"]
    assert float(row["image_auroc_logical"]) == meta["auroc_logical"]
    assert float(row["image_auroc_structural"]) == meta["auroc_structural"]
    # toolkit GT rule (>= 0.5 after a bilinear resize) differs from the reference's (== 255 after bicubic): close
    assert abs(float(row["pixel_auroc"]) - meta["auroc_pixel"]) < 0.02


def test_cli_rejects_bad_imagesize(fixtures_dir, tmp_path, capsys):
    code = main.main(["--method", "slsg", "--dataset", "loco", "--datapath",
                      str(fixtures_dir / "slsg-reference" / "data"), "--classes", "pushpins", "--imagesize", "100",
                      "--test", "test", "--results_path", str(tmp_path), "--num_workers", "0"])
    assert code == 2 and "--imagesize 100" in capsys.readouterr().err
