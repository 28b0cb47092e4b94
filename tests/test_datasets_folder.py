"""A user's own folder of good images: flat and nested, with and without a test set."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from common.errors import UserError
from datasets import list_classes, load_samples
from datasets_trees import mvtec_tree, write_image, write_mask


def test_flat_folder_is_one_class(tmp_path):
    root = tmp_path / "parts"
    for i, name in enumerate(("b.png", "a.JPG", "c.bmp")):
        write_image(root / name, i)
    (root / "notes.txt").write_text("ignored")
    (root / ".hidden.png").write_bytes(b"ignored")
    assert list_classes("folder", root) == ["parts"]
    train = load_samples("folder", root, "parts", "train")
    assert [Path(s.image_path).name for s in train] == ["a.JPG", "b.png", "c.bmp"]
    with pytest.raises(UserError, match="no test split"):
        load_samples("folder", root, "parts", "test")
    write_mask(root / "fg_mask" / "parts" / "a.JPG", (0, 0, 5, 5))
    write_mask(root / "fg_mask" / "parts" / "b.png", (0, 0, 5, 5))
    with pytest.raises(UserError, match="c.bmp"):
        load_samples("folder", root, "parts", "train", fg=True)


def test_nested_folder_with_optional_test_and_gt(tmp_path):
    root = tmp_path / "custom"
    mvtec_tree(root, cls="class1", types={"good": 1, "dent": 2})
    mvtec_tree(root, cls="class2", with_train=True, types={})
    shutil.rmtree(root / "class2" / "test", ignore_errors=True)
    shutil.rmtree(root / "class1" / "ground_truth")
    assert list_classes("folder", root) == ["class1", "class2"]
    test = load_samples("folder", root, "class1", "test")  # no GT: image metrics only, no warning needed
    assert [(s.anomaly_type, s.label, s.mask_path) for s in test] == [("dent", 1, None), ("dent", 1, None),
                                                                      ("good", 0, None)]
    with pytest.raises(UserError, match="no test folder"):
        load_samples("folder", root, "class2", "test")
    assert len(load_samples("folder", root, "class2", "train")) == 3


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="--datapath"):
        list_classes("folder", tmp_path / "empty")
