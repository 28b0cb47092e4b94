"""results.csv in the reference's byte format, atomic writes, saved maps."""
from __future__ import annotations

import os

import numpy as np
import pytest

from common.atomic import atomic_write_bytes
from runner.results import Predictions, read_results_csv, save_maps, write_results_csv


def test_results_csv_is_byte_identical_to_the_reference(fixtures_dir, tmp_path):
    reference = (fixtures_dir / "glass-reference" / "expected_results.csv").read_bytes()
    values = reference.decode().split("\r\n")[1].split(",")
    row = {"image_auroc": float(values[1]), "image_ap": float(values[2]), "pixel_auroc": float(values[3]),
           "pixel_ap": float(values[4]), "pixel_pro": float(values[5]), "best_epoch": int(values[6])}
    out = write_results_csv(tmp_path / "results.csv", {"mvtec_carpet": row})
    assert out.read_bytes() == reference


def test_results_csv_extra_columns_and_mean(tmp_path):
    rows = {"a": {"image_auroc": 0.5, "best_epoch": 2, "au_pro": 0.25, "last_epoch": 4},
            "b": {"image_auroc": 1.0, "best_epoch": 3, "au_pro": float("nan"), "last_epoch": 4}}
    path = write_results_csv(tmp_path / "r.csv", rows)
    back = read_results_csv(path)
    assert back["a"]["au_pro"] == 0.25 and back["b"]["au_pro"] is None
    lines = path.read_text().splitlines()
    assert lines[0].startswith("Row Names,image_auroc,image_ap,pixel_auroc,pixel_ap,pixel_pro,best_epoch,au_pro")
    assert lines[-1].split(",")[1] == "0.75" and lines[-1].split(",")[6] == "2.5"


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind


def test_save_maps_layout(tmp_path):
    import tifffile

    maps = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    pred = Predictions(["carpet/test/good/000.png", "carpet/test/cut/000.png"], ["good", "cut"],
                       np.array([0, 1]), np.array([0.1, 0.9]), maps, np.zeros((2, 8, 8), np.uint8))
    save_maps(tmp_path, "carpet", pred)
    assert (tmp_path / "scores.csv").read_text().splitlines() == [
        "image,label,score", "carpet/test/good/000.png,0,0.1", "carpet/test/cut/000.png,1,0.9"]
    stored = np.load(tmp_path / "maps.npz")
    np.testing.assert_array_equal(stored["carpet/test/cut/000.png"], maps[1])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "tiff/carpet/test/cut/000.tiff"), maps[1])


def test_maps_go_back_to_the_original_image_grid():
    """A mask pushed through the GLASS geometry (shorter side 64, centre crop 48) and mapped back lands where it
    came from; pixels the crop dropped get the map minimum; the identity geometry is exact."""
    from PIL import Image

    from runner.results import to_original_resolution
    from datasets.preprocess import Preprocessing

    original = np.zeros((120, 90), np.uint8)  # H x W, portrait
    original[50:80, 30:60] = 255
    pre = Preprocessing(resize=64, imagesize=48, mean=(0, 0, 0), std=(1, 1, 1))
    small = pre.mask(Image.fromarray(original)).numpy()[0]
    back = to_original_resolution(small, pre, 90, 120)
    assert back.shape == (120, 90)
    inside = back > 0.5
    truth = original > 0
    assert (inside & truth).sum() / (inside | truth).sum() > 0.9
    # rows the crop dropped (resized 64 x 85, crop 48: 18 rows above and 19 below, i.e. ~26 original rows each side)
    assert back[:20].max() == small.min() and back[-20:].max() == small.min()

    identity = Preprocessing(resize=(32, 32), imagesize=32, mean=(0, 0, 0), std=(1, 1, 1))
    values = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    np.testing.assert_array_equal(to_original_resolution(values, identity, 32, 32), values)
