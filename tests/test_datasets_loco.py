"""MVTec LOCO: official layout (defect channels + defects_config.json), merged layout, sPRO ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from datasets import (TestDataset, list_classes, load_samples, loco_ground_truth, merge_loco_masks,
                      slsg_preprocessing)
from datasets_trees import loco_tree


def _box(box, size=(48, 32)):
    array = np.zeros((size[1], size[0]), bool)
    x0, y0, x1, y1 = box
    array[y0:y1, x0:x1] = True
    return array


def test_official_layout_order_channels_and_splits(tmp_path):
    root = loco_tree(tmp_path / "loco")
    assert list_classes("loco", root) == ["box"]
    test = load_samples("loco", root, "box", "test")
    assert [(s.anomaly_type, Path(s.image_path).name, s.label) for s in test] == [
        ("good", "000.png", 0), ("logical_anomalies", "000.png", 1), ("logical_anomalies", "001.png", 1),
        ("structural_anomalies", "000.png", 1)]
    assert test[0].mask_path is None and test[0].defect_channels is None
    assert [Path(c).relative_to(root).as_posix() for c in test[1].defect_channels] == [
        "box/ground_truth/logical_anomalies/000/000.png", "box/ground_truth/logical_anomalies/000/001.png"]
    assert Path(test[1].mask_path).is_dir()
    assert len(load_samples("loco", root, "box", "train")) == 2
    assert len(load_samples("loco", root, "box", "validation")) == 1


def test_spro_ground_truth_channels_and_saturation(tmp_path):
    root = loco_tree(tmp_path / "loco")
    test = load_samples("loco", root, "box", "test")
    gt = loco_ground_truth(test[1])
    first, second = _box((0, 0, 10, 10)), _box((5, 5, 20, 12))
    np.testing.assert_array_equal(gt.merged, first | second)
    assert [(c.defect_name, c.pixel_value) for c in gt.channels] == [("missing_part", 255), ("extra_part", 254)]
    np.testing.assert_array_equal(gt.channels[0].mask, first)
    # relative 0.5 of 100 px -> int(50); absolute 30 px capped by the area 105 -> 30
    assert [c.saturation_area for c in gt.channels] == [50, 30]
    assert loco_ground_truth(test[3]).channels[0].saturation_area == 16  # relative 1.0 of a 4 x 4 box
    good = loco_ground_truth(test[0])
    assert good.channels == [] and good.merged.shape == (32, 48) and not good.merged.any()


def test_merged_mask_in_the_test_dataset_and_merged_layout(tmp_path):
    official = loco_tree(tmp_path / "official")
    merged_root = loco_tree(tmp_path / "merged", merged=True)
    a = load_samples("loco", official, "box", "test")
    b = load_samples("loco", merged_root, "box", "test")
    assert [s.defect_channels is None for s in b] == [True] * 4
    assert [Path(s.mask_path).name if s.mask_path else None for s in b] == \
        [None, "000_mask.png", "001_mask.png", "000_mask.png"]
    pre = slsg_preprocessing(32)
    for rule in ("half", "nonzero"):
        for x, y in zip(TestDataset(a, pre, rule), TestDataset(b, pre, rule)):
            assert torch.equal(x["mask"], y["mask"]) and torch.equal(x["image"], y["image"])
    union = (_box((0, 0, 10, 10)) | _box((5, 5, 20, 12))).astype(np.uint8) * 255
    expected = np.asarray(Image.fromarray(union).resize((32, 32), Image.Resampling.BILINEAR), np.float32) / 255
    item = TestDataset(a, pre, "half")[1]
    assert torch.equal(item["mask"][0], torch.from_numpy(expected >= 0.5).float())
    with pytest.raises(UserError, match="official LOCO"):
        loco_ground_truth(b[1])


def test_merge_loco_masks_writes_the_merged_layout(tmp_path):
    root = loco_tree(tmp_path / "loco")
    assert merge_loco_masks(root) == 3
    written = np.asarray(Image.open(root / "box" / "ground_truth" / "logical_anomalies" / "000_mask.png"))
    np.testing.assert_array_equal(written, (_box((0, 0, 10, 10)) | _box((5, 5, 20, 12))) * 255)
    test = load_samples("loco", root, "box", "test")  # the channel folders still win
    assert test[1].defect_channels is not None


def test_loco_bad_input(tmp_path):
    root = loco_tree(tmp_path / "loco")
    channel = root / "box" / "ground_truth" / "logical_anomalies" / "001" / "000.png"
    array = np.asarray(Image.open(channel)).copy()
    array[0, 0] = 7  # a value not in defects_config.json... and a second value in one channel
    Image.fromarray(array).save(channel)
    test = load_samples("loco", root, "box", "test")
    with pytest.raises(UserError, match="several pixel values"):
        loco_ground_truth(test[2])
    array[array == 255] = 0
    Image.fromarray(array).save(channel)
    with pytest.raises(UserError, match="pixel value 7"):
        loco_ground_truth(test[2])
    (root / "box" / "ground_truth" / "structural_anomalies" / "000").rename(
        root / "box" / "ground_truth" / "structural_anomalies" / "999")
    with pytest.raises(UserError, match=r"no defect folder.*000"):
        load_samples("loco", root, "box", "test")
    (root / "box" / "defects_config.json").write_text("{not json")
    with pytest.raises(UserError, match="defects_config.json"):
        loco_ground_truth(test[1])
