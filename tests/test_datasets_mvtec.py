"""MVTec-layout loaders (MVTec AD, MPDD, WFDD, MAD), mask pairing, fg masks, bad input, and the GLASS fixture."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from datasets import (Preprocessing, TestDataset, TrainImages, glass_preprocessing, list_classes, load_samples,
                      read_mask, read_rgb)
from datasets_trees import mvtec_tree, write_mask


def _rel(samples, root):
    return [Path(s.image_path).relative_to(root).as_posix() for s in samples]


def test_mvtec_order_labels_and_stem_pairing(tmp_path):
    root = mvtec_tree(tmp_path / "mv", types={"good": 2, "scratch": 2, "crack": 1})
    (tmp_path / "mv" / "license.txt").write_text("stray file at the root")
    (tmp_path / "mv" / "widget" / "test" / "good" / ".DS_Store").write_bytes(b"x")
    assert list_classes("mvtec", root) == ["widget"]
    test = load_samples("mvtec", root, "widget", "test")
    assert _rel(test, root) == ["widget/test/crack/000.png", "widget/test/good/000.png", "widget/test/good/001.png",
                                "widget/test/scratch/000.png", "widget/test/scratch/001.png"]
    assert [s.label for s in test] == [1, 0, 0, 1, 1]
    assert [s.anomaly_type for s in test] == ["crack", "good", "good", "scratch", "scratch"]
    assert [Path(s.mask_path).name if s.mask_path else None for s in test] == \
        ["000_mask.png", None, None, "000_mask.png", "001_mask.png"]
    assert all(Path(s.image_path).is_absolute() for s in test)
    train = load_samples("mvtec", root, "widget", "train")
    assert _rel(train, root) == [f"widget/train/good/{i:03d}.png" for i in range(3)]
    assert {s.label for s in train} == {0} and all(s.fg_mask_path is None for s in train)


def test_stem_pairing_survives_a_missing_mask_where_order_would_shift(tmp_path):
    """Stem pairing puts each mask on its own image; sorted position would shift them (and the counts differ)."""
    root = mvtec_tree(tmp_path / "mv", types={"good": 1, "scratch": 3})
    (root / "widget" / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with pytest.raises(UserError, match=r"ground_truth/scratch.*no mask for 001.png"):
        load_samples("mvtec", root, "widget", "test")
    with pytest.raises(UserError, match="--mask_pairing order"):
        load_samples("mvtec", root, "widget", "test", mask_pairing="order")


def test_same_name_masks_and_order_fallback(tmp_path):
    root = mvtec_tree(tmp_path / "mv", types={"good": 1, "scratch": 2}, mask_suffix="")  # 000.png <-> 000.png
    test = load_samples("mvtec", root, "widget", "test")
    assert [Path(s.mask_path).name for s in test if s.label] == ["000.png", "001.png"]
    gt = root / "widget" / "ground_truth" / "scratch"
    (gt / "000.png").rename(gt / "a.png")
    (gt / "001.png").rename(gt / "b.png")
    with pytest.warns(UserWarning, match="pairing by sorted position"):
        test = load_samples("mvtec", root, "widget", "test")
    assert [Path(s.mask_path).name for s in test if s.label] == ["a.png", "b.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ordered = load_samples("mvtec", root, "widget", "test", mask_pairing="order")
    assert [s.mask_path for s in ordered] == [s.mask_path for s in test]


def test_mpdd_like_jpg_and_wfdd(tmp_path):
    root = mvtec_tree(tmp_path / "mpdd", cls="tubes", ext=".JPG", types={"good": 1, "anomalous": 2})
    mvtec_tree(root, cls="connector", types={"good": 1, "parts_mismatch": 1})
    assert list_classes("mpdd", root) == ["connector", "tubes"]
    test = load_samples("mpdd", root, "tubes", "test")
    assert [Path(s.image_path).name for s in test] == ["000.JPG", "001.JPG", "000.JPG"]
    assert [Path(s.mask_path).name for s in test[:2]] == ["000_mask.png", "001_mask.png"]
    assert len(load_samples("wfdd", root, "connector", "train")) == 3


def test_mad_is_test_only(tmp_path):
    person = tmp_path / "MAD-man" / "Person_1"
    mvtec_tree(person, cls="bottle", with_train=False, types={"good": 2, "broken_large": 6})
    assert list_classes("mad-man", person) == ["bottle"]
    test = load_samples("mad-man", person, "bottle", "test")
    assert [s.label for s in test] == [1] * 6 + [0] * 2
    with pytest.raises(UserError, match="test-only"):
        load_samples("mad-man", person, "bottle", "train")
    with pytest.raises(UserError, match="Person_1"):
        list_classes("mad-man", tmp_path / "MAD-man")  # the subsets' parent given by mistake
    beta = tmp_path / "MAD-sys" / "Beta_0.1"
    mvtec_tree(beta, cls="carpet", with_train=False, types={"good": 1, "color": 1})
    assert [s.label for s in load_samples("mad-sys", beta, "carpet", "test")] == [1, 0]


def test_bad_input_is_reported_before_training(tmp_path):
    root = mvtec_tree(tmp_path / "mv")
    with pytest.raises(UserError, match="--datapath"):
        load_samples("mvtec", tmp_path / "nope", "widget", "test")
    with pytest.raises(UserError, match="--dataset"):
        load_samples("mvtecc", root, "widget", "test")
    with pytest.raises(UserError, match=r"unknown class 'gadget'.*available: widget"):
        load_samples("mvtec", root, "gadget", "test")
    for p in (root / "widget" / "train" / "good").iterdir():
        p.unlink()
    (root / "widget" / "train" / "good" / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"train/good holds no images"):
        load_samples("mvtec", root, "widget", "train")
    shutil.rmtree(root / "widget" / "ground_truth" / "crack")
    with pytest.raises(UserError, match=r"ground_truth/crack"):
        load_samples("mvtec", root, "widget", "test")
    bad = root / "widget" / "test" / "good" / "000.png"
    bad.write_bytes(b"garbage")
    shutil.rmtree(root / "widget" / "ground_truth")  # no GT at all: image metrics only
    with pytest.warns(UserWarning, match="no ground_truth"):
        samples = load_samples("mvtec", root, "widget", "test")
    assert all(s.mask_path is None for s in samples)
    dataset = TestDataset(samples, Preprocessing(32, 32))
    index = [Path(s.image_path) for s in samples].index(bad.absolute())
    with pytest.raises(UserError, match="000.png"):
        dataset[index]


def test_test_dataset_items(tmp_path):
    root = mvtec_tree(tmp_path / "mv", types={"good": 1, "scratch": 1})
    samples = load_samples("mvtec", root, "widget", "test")
    pre = Preprocessing(36, 32)
    item = TestDataset(samples, pre, gt_rule="half", root=root)[1]
    assert item["image_path"] == "widget/test/scratch/000.png" and item["label"] == 1
    assert item["anomaly_type"] == "scratch" and item["image"].shape == (3, 32, 32)
    mask = read_mask(samples[1].mask_path)  # box x 2..20, y 3..25 of a 40 x 32 mask
    expected = np.asarray(mask.resize((45, 36), Image.Resampling.BILINEAR).crop((6, 2, 38, 34)), np.float32) / 255
    assert torch.equal(item["mask"][0], torch.from_numpy(expected >= 0.5).float())
    good = TestDataset(samples, pre)[0]
    assert good["label"] == 0 and float(good["mask"].sum()) == 0.0


def test_fg_masks_paths_missing_and_empty(tmp_path):
    # the dataset root contains the class name: the reference's path cutting would go wrong here
    root = mvtec_tree(tmp_path / "widget_data", cls="widget", train=2)
    with pytest.raises(UserError, match="--fg"):
        load_samples("mvtec", root, "widget", "train", fg=True)
    fg_dir = root / "fg_mask" / "widget"
    write_mask(fg_dir / "000.png", (10, 8, 30, 24))
    with pytest.raises(UserError, match=r"001.png"):
        load_samples("mvtec", root, "widget", "train", fg=True)
    write_mask(fg_dir / "001.png", (0, 0, 0, 0))  # all zero
    assert list_classes("mvtec", root) == ["widget"]  # fg_mask is not a class
    train = load_samples("mvtec", root, "widget", "train", fg=True)
    assert [Path(s.fg_mask_path) for s in train] == [fg_dir.absolute() / "000.png", fg_dir.absolute() / "001.png"]
    pre = Preprocessing(32, 32)
    data = TrainImages(train, pre)
    first = data[0]
    raw = Image.open(fg_dir / "000.png").resize((40, 32), Image.Resampling.BILINEAR)  # shorter side 32: no resize
    expected = np.asarray(raw.crop((4, 0, 36, 32))) > 0
    assert torch.equal(first["fg_mask"][0], torch.from_numpy(expected).float()) and first["index"] == 0
    with pytest.warns(UserWarning, match="001.png"):
        second = data[1]
    assert float(second["fg_mask"].min()) == 1.0
    plain = TrainImages(load_samples("mvtec", root, "widget", "train"), pre)[0]
    assert float(plain["fg_mask"].min()) == 1.0 and torch.equal(plain["image"], first["image"])


def test_glass_reference_fixture_order_inputs_and_masks(fixtures_dir):
    base = fixtures_dir / "glass-reference"
    expected = np.load(base / "expected.npz")
    samples = load_samples("mvtec", base / "data" / "mvtec", "carpet", "test")
    assert [Path(s.image_path).relative_to(base).as_posix() for s in samples] == list(expected["image_paths"])
    assert [Path(s.mask_path).relative_to(base).as_posix() if s.mask_path else "" for s in samples] == \
        list(expected["mask_paths"])
    np.testing.assert_array_equal([s.label for s in samples], expected["labels"])
    pre = glass_preprocessing("carpet", 288, 288)
    dataset = TestDataset(samples, pre, gt_rule="glass", root=base)
    for i, sample in enumerate(samples):
        item = dataset[i]
        assert item["image_path"] == expected["image_paths"][i]
        np.testing.assert_array_equal(item["image"][:, :16, :16].numpy(), expected["debug_input_crop16"][i])
        np.testing.assert_array_equal(pre.image_uint8(read_rgb(sample.image_path)), expected["input_uint8"][i])
        raw = pre.mask(read_mask(sample.mask_path))[0].numpy() if sample.mask_path else np.zeros((288, 288))
        np.testing.assert_array_equal(raw, expected["gt_masks"][i])
        # the GLASS rule keeps only pixels exactly 1.0 (README: 1372, 2207, 439, 1006, 0, 0)
        assert int(item["mask"].sum()) == int((expected["gt_masks"][i] == 1.0).sum())
    assert [int(dataset[i]["mask"].sum()) for i in range(4)] == [1372, 2207, 439, 1006]
    train = load_samples("mvtec", base / "data" / "mvtec", "carpet", "train", fg=True)
    assert len(train) == 10 and Path(train[0].fg_mask_path).parent.name == "carpet"
