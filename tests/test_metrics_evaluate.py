"""``python -m metrics.evaluate`` on generated MVTec AD / MVTec LOCO trees, against the official scripts' values."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from common.errors import UserError
from metrics.evaluate import _parser, evaluate, main

REPO = Path(__file__).resolve().parents[1]
CASES = ("mixed_regions_64x80", "quantised_ties_40x56")


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _tiff(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array.astype(np.float32))


@pytest.fixture()
def mvtec_tree(tmp_path, fixtures_dir):
    """Fixture cases written in the MVTec AD layout under the object names the official CLI was run with."""
    data = np.load(fixtures_dir / "metrics" / "pixel_cases.npz")
    expected = json.loads((fixtures_dir / "metrics" / "expected.json").read_text())["cases"]
    objects = {}
    for case in CASES:
        obj = expected[case]["checks"]["mvtec_cli_object_name"]
        objects[obj] = expected[case]
        for i, (amap, mask) in enumerate(zip(data[case + "__maps"], data[case + "__masks"])):
            kind = "defect" if mask.any() else "good"
            _png(tmp_path / "data" / obj / "test" / kind / f"{i:03d}.png", np.zeros(mask.shape, np.uint8))
            if mask.any():
                _png(tmp_path / "data" / obj / "ground_truth" / kind / f"{i:03d}_mask.png", mask * 255)
            _tiff(tmp_path / "maps" / obj / "test" / kind / f"{i:03d}.tiff", amap)
    return tmp_path, objects


def _args(*argv: str):
    return _parser().parse_args(list(argv))


def test_mvtec_layout_reproduces_official_metrics_json(mvtec_tree):
    root, objects = mvtec_tree
    out = root / "out"
    code = main(["--anomaly_maps_dir", str(root / "maps"), "--dataset_base_dir", str(root / "data"),
                 "--output_dir", str(out), "--evaluated_objects", *objects])
    assert code == 0
    written = json.loads((out / "metrics.json").read_text())
    assert list(written) == [*objects, "mean_au_pro", "mean_classification_au_roc"]
    for obj, exp in objects.items():
        assert set(written[obj]) == {"au_pro", "classification_au_roc", "classification_roc_curve_fpr",
                                     "classification_roc_curve_tpr"}
        assert abs(written[obj]["au_pro"] - exp["mvtec_au_pro"]["0.3"]) <= 1e-6
        assert abs(written[obj]["classification_au_roc"] - exp["checks"]["mvtec_cli_classification_au_roc"]) <= 1e-12
        fpr, tpr = written[obj]["classification_roc_curve_fpr"], written[obj]["classification_roc_curve_tpr"]
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(exp["mvtec_classification_au_roc"], abs=1e-12)
    means = [objects[o]["mvtec_au_pro"]["0.3"] for o in objects]
    assert written["mean_au_pro"] == pytest.approx(np.mean(means), abs=1e-6)


def test_mvtec_integration_limit_and_default_objects(mvtec_tree):
    root, objects = mvtec_tree
    result = evaluate(_args("--anomaly_maps_dir", str(root / "maps"), "--dataset_base_dir", str(root / "data"),
                            "--pro_integration_limit", "0.05"))
    assert sorted(k for k in result if not k.startswith("mean_")) == sorted(objects)
    for obj, exp in objects.items():
        assert abs(result[obj]["au_pro"] - exp["mvtec_au_pro"]["0.05"]) <= 1e-6


def test_mvtec_bad_inputs_name_the_file(mvtec_tree):
    root, objects = mvtec_tree
    obj = next(iter(objects))
    base = ("--anomaly_maps_dir", str(root / "maps"), "--dataset_base_dir", str(root / "data"))
    mask_path = next((root / "data" / obj / "ground_truth").rglob("*_mask.png"))
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[0, 0], mask[0, 1] = 128, 255
    _png(mask_path, mask)
    with pytest.raises(UserError, match=f"{mask_path.name}.*not binary"):
        evaluate(_args(*base, "--evaluated_objects", obj))
    _png(mask_path, np.zeros((3, 3), np.uint8))
    with pytest.raises(UserError, match=f"{mask_path.name}.*\\(3, 3\\)"):
        evaluate(_args(*base, "--evaluated_objects", obj))
    map_path = next((root / "maps" / obj / "test").rglob("*.tiff"))
    map_path.unlink()
    with pytest.raises(UserError, match=f"anomaly map .*{map_path.name} is missing"):
        evaluate(_args(*base, "--evaluated_objects", obj))
    with pytest.raises(UserError, match="--pro_integration_limit"):
        evaluate(_args(*base, "--pro_integration_limit", "0"))
    with pytest.raises(UserError, match="nosuch"):
        evaluate(_args(*base, "--evaluated_objects", "nosuch"))


@pytest.fixture()
def loco_tree(tmp_path, fixtures_dir):
    shutil.copytree(fixtures_dir / "metrics" / "loco", tmp_path / "loco")
    return tmp_path / "loco"


def test_loco_cli_writes_official_metrics_json(fixtures_dir, tmp_path):
    root = fixtures_dir / "metrics" / "loco"
    expected = json.loads((fixtures_dir / "metrics" / "loco_expected.json").read_text())
    run = subprocess.run([sys.executable, "-m", "metrics.evaluate", "--layout", "loco", "--object_name",
                          "breakfast_box", "--anomaly_maps_dir", str(root / "anomaly_maps"), "--dataset_base_dir",
                          str(root / "dataset"), "--output_dir", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "AU-sPRO logical_anomalies" in run.stdout
    written = json.loads((tmp_path / "metrics.json").read_text())
    official = expected["official_v2"]["metrics_json"]
    assert written.keys() == official.keys()
    assert written["classification"]["auc_roc"] == pytest.approx(official["classification"]["auc_roc"], abs=1e-12)
    for subset, values in expected["exact"]["auc_spro"].items():
        assert written["localization"]["auc_spro"][subset].keys() == values.keys()
        for key, want in values.items():
            assert abs(written["localization"]["auc_spro"][subset][key] - want) <= 1e-9


def test_loco_per_object_nesting_and_bad_inputs(loco_tree):
    base = ("--layout", "loco", "--anomaly_maps_dir", str(loco_tree / "anomaly_maps"),
            "--dataset_base_dir", str(loco_tree / "dataset"))
    result = evaluate(_args(*base, "--max_fprs", "0.05"))
    assert list(result) == ["breakfast_box"]
    assert list(result["breakfast_box"]["localization"]["auc_spro"]["mean"]) == ["0.05"]
    config = loco_tree / "dataset" / "breakfast_box" / "defects_config.json"
    channel = loco_tree / "dataset" / "breakfast_box" / "ground_truth" / "logical_anomalies" / "000" / "000.png"
    original = np.asarray(Image.open(channel)).copy()
    _png(channel, np.where(original > 0, 99, 0).astype(np.uint8))
    with pytest.raises(UserError, match="000.png has pixel value 99"):
        evaluate(_args(*base))
    _png(channel, original[:10])
    with pytest.raises(UserError, match="000.png has \\(10, 80\\)"):
        evaluate(_args(*base))
    config.write_text("[]")
    with pytest.raises(UserError, match="defects_config.json must be a non-empty"):
        evaluate(_args(*base))
    assert main([*base]) == 2  # the CLI prints "error: ..." and exits 2
