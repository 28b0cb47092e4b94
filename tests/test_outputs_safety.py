"""Outputs: one prediction output per input even when names differ only by extension, dangling symbolic links
skipped with a warning, and a test set of good images only still gives a stored threshold (held-out quantile)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

import datasets
import main
from runner.deployment import held_out_threshold
from tests.cli_helpers import tiny_demo, tiny_glass_flags


@pytest.fixture(scope="module")
def good_only(tmp_path_factory):
    """A tiny model trained on a tree whose test set holds good images only."""
    root = tmp_path_factory.mktemp("outputs")
    demo = tiny_demo(root / "data")
    cls_dir = demo.datapath / "brick"
    for folder in (cls_dir / "test").iterdir():
        if folder.name != "good":
            shutil.rmtree(folder)
    shutil.rmtree(cls_dir / "ground_truth", ignore_errors=True)
    results = root / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main.main(tiny_glass_flags(demo, results) + ["--classes", "brick", "--save_maps"]) == 0
    return demo, results, results / "models/backbone_0/mvtec_brick"


def test_good_only_test_set_stores_a_held_out_quantile_threshold(good_only, capsys):
    _, results, ckpt_dir = good_only
    stored = json.loads((ckpt_dir / "toolkit.json").read_text())
    assert stored["threshold"] is not None and "good test images" in stored["threshold_rule"]
    with open(results / "eval/mvtec_brick/scores.csv", newline="") as handle:
        scores = [float(row["score"]) for row in csv.DictReader(handle)]
    assert stored["threshold"] == pytest.approx(held_out_threshold(np.asarray(scores)), rel=1e-6)


def test_predict_names_outputs_uniquely_and_skips_dangling_links(good_only, tmp_path):
    demo, _, ckpt_dir = good_only
    folder = tmp_path / "in"
    folder.mkdir()
    source = next((demo.datapath / "brick/test/good").glob("*.png"))
    rgb = np.asarray(Image.open(source).convert("RGB"))
    Image.fromarray(rgb).save(folder / "x.png")
    Image.fromarray(255 - rgb).save(folder / "x.jpg", quality=95)
    Image.fromarray(rgb).save(folder / "y.png")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="dangling.png"):
        code = main.main(["--test", "predict", "--checkpoint", str(ckpt_dir), "--input", str(folder), "--output",
                          str(out), "--save_maps"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert sorted(os.path.basename(r["image"]) for r in rows) == ["x.jpg", "x.png", "y.png"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["x.jpg.png", "x.png.png", "y.png"]
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["x.jpg.tiff", "x.png.tiff", "y.tiff"]
    first, second = (np.asarray(Image.open(out / "overlays" / n)) for n in ("x.png.png", "x.jpg.png"))
    assert not np.array_equal(first, second)  # two different inputs, two different overlays


def test_dataset_listing_skips_a_dangling_link_with_a_warning(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "b.png")
    with pytest.warns(UserWarning, match="b.png.*missing file"):
        listed = datasets.list_images(tmp_path)
    assert [p.name for p in listed] == ["a.png"]
