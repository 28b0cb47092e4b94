"""VisA: reading the split CSV, the conversion to the MVTec layout, and the VisA GT rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from datasets import Preprocessing, TestDataset, list_classes, load_samples, prepare_visa
from datasets_trees import visa_tree, write_mask


def test_csv_order_labels_and_row_pairing(tmp_path):
    root = visa_tree(tmp_path / "VisA")
    assert list_classes("visa", root) == ["candle", "pcb1"]
    train = load_samples("visa", root, "pcb1", "train")
    assert [Path(s.image_path).name for s in train] == ["0003.JPG", "0001.JPG"]  # CSV order, not sorted
    test = load_samples("visa", root, "pcb1", "test")
    names = [Path(s.image_path).relative_to(root).as_posix() for s in test]
    assert names == ["pcb1/Data/Images/Anomaly/001.JPG", "pcb1/Data/Images/Anomaly/000.JPG",
                     "pcb1/Data/Images/Normal/0002.JPG"]  # anomalies first although the normal row comes earlier
    assert [s.label for s in test] == [1, 1, 0] and [s.anomaly_type for s in test] == ["bad", "bad", "good"]
    assert [Path(s.mask_path).name if s.mask_path else None for s in test] == ["001.png", "000.png", None]


def test_conversion_matches_the_csv_reading(tmp_path):
    root = visa_tree(tmp_path / "VisA")
    (root / "fg_mask" / "pcb1").mkdir(parents=True)
    write_mask(root / "fg_mask" / "pcb1" / "0003.JPG", (0, 0, 10, 10), (48, 32))
    out = tmp_path / "visa_mvtec"
    assert prepare_visa(root, out) == 10
    assert (out / "pcb1" / "train" / "good" / "0003.JPG").read_bytes() == \
        (root / "pcb1" / "Data" / "Images" / "Normal" / "0003.JPG").read_bytes()
    mask = np.asarray(Image.open(out / "pcb1" / "ground_truth" / "bad" / "001.png"))
    raw = np.asarray(Image.open(root / "pcb1" / "Data" / "Masks" / "Anomaly" / "001.png"))
    assert raw.max() == 1 and set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask > 0, raw > 0)
    assert (out / "fg_mask" / "pcb1" / "0003.JPG").is_file()
    # the converted tree is served by the MVTec-layout loader with stem pairing
    assert list_classes("visa", out) == ["candle", "pcb1"]
    converted = load_samples("visa", out, "pcb1", "test")
    assert [(Path(s.image_path).name, s.label, s.anomaly_type) for s in converted] == \
        [("000.JPG", 1, "bad"), ("001.JPG", 1, "bad"), ("0002.JPG", 0, "good")]
    assert [Path(s.mask_path).name for s in converted[:2]] == ["000.png", "001.png"]
    assert prepare_visa(root, out) == 10  # re-running keeps what exists


def test_nonzero_rule_counts_every_touched_pixel(tmp_path):
    root = visa_tree(tmp_path / "VisA")
    test = load_samples("visa", root, "pcb1", "test")
    pre = Preprocessing(20, 20)
    raw = (np.asarray(Image.open(test[0].mask_path)) > 0).astype(np.float32)  # values 2: not 255
    by_hand = np.asarray(Image.fromarray(raw, mode="F").resize((30, 20), Image.Resampling.BILINEAR))[:, 5:25]
    nonzero = TestDataset(test, pre, gt_rule="nonzero")[0]["mask"][0]
    assert torch.equal(nonzero, torch.from_numpy(by_hand > 0).float())
    half = TestDataset(test, pre, gt_rule="half")[0]["mask"][0]
    assert torch.equal(half, torch.from_numpy(by_hand >= 0.5).float())  # small label values are not lost
    assert 0 < half.sum() < nonzero.sum()


def test_bad_csv_input(tmp_path):
    root = visa_tree(tmp_path / "VisA")
    csv = root / "split_csv" / "1cls.csv"
    text = csv.read_text()
    csv.write_text(text.replace("pcb1/Data/Images/Anomaly/001.JPG", "pcb1/Data/Images/Anomaly/404.JPG"))
    with pytest.raises(UserError, match=r"404.JPG"):
        load_samples("visa", root, "pcb1", "test")
    csv.write_text(text.replace("anomaly", "defect", 1))
    with pytest.raises(UserError, match="line"):
        load_samples("visa", root, "pcb1", "test")
    csv.write_text(text.replace("object,", "thing,", 1))
    with pytest.raises(UserError, match="object"):
        list_classes("visa", root)
    csv.write_text(text)
    with pytest.raises(UserError, match="available: candle, pcb1"):
        load_samples("visa", root, "pcb9", "train")
