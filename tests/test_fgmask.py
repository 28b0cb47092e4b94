"""Foreground masks from normal images (``python -m datasets.prepare fgmask``) and the offline texture folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import main as cli
from datasets import prepare
from datasets.fg import fg_mask_path
from datasets.fgmask import ImageMask, binarize, class_masks, decide_kind
from fg_trees import object_image, write_fg_tree

OBJECTS = ("ellipse", "ring", "polygon_dark")
TEXTURES = ("brick", "grass")


@pytest.fixture(scope="module")
def fg_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("fgtree")
    truth = write_fg_tree(root)
    assert prepare.main(["fgmask", "--datapath", str(root), "--dataset", "mvtec"]) == 0
    return root, truth


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("cls", OBJECTS)
def test_object_masks_match_the_true_shapes(fg_tree, cls):
    root, truth = fg_tree
    for index, true in enumerate(truth[cls]):
        path = fg_mask_path(root, cls, root / cls / "train" / "good" / f"{index:03d}.png")
        mask = np.asarray(Image.open(path))
        assert mask.shape == true.shape and set(np.unique(mask)) <= {0, 255}
        assert _iou(mask > 0, true) >= 0.9, (cls, index)


@pytest.mark.parametrize("cls", TEXTURES)
def test_texture_classes_get_full_masks(fg_tree, cls):
    root, truth = fg_tree
    for index in range(len(truth[cls])):
        assert (np.asarray(Image.open(root / "fg_mask" / cls / f"{index:03d}.png")) == 255).all()


def test_polarity_comes_from_the_border():
    rng = np.random.default_rng(3)
    for dark in (False, True):  # dark object on light ground and light object on dark ground
        rgb, true = object_image("ellipse", 100, 140, rng, dark_object=dark)
        result = binarize(rgb)
        assert _iou(result.mask, true) >= 0.9 and result.purity > 0.95


def test_kind_override_and_decision_rule():
    rng = np.random.default_rng(1)
    images = [object_image("ellipse", 80, 80, rng)[0] for _ in range(3)]
    masks, decision = class_masks(images, "texture")
    assert decision.kind == "texture" and all(m.all() for m in masks)
    masks, decision = class_masks(images, "object")
    assert decision.kind == "object" and all(0.05 < m.mean() < 0.5 for m in masks)
    empty = np.zeros((4, 4), bool)
    good = ImageMask(empty, 0.2, 1.0, 0.9)
    assert decide_kind([good] * 3).kind == "object"
    assert decide_kind([ImageMask(empty, 0.95, 1.0, 0.9)] * 3).kind == "texture"  # covers the frame
    assert decide_kind([ImageMask(empty, 0.2, 0.6, 0.9)] * 3).kind == "texture"   # border not background
    unstable = [ImageMask(empty, c, 1.0, 0.9) for c in (0.02, 0.5, 0.05)]
    assert decide_kind(unstable).kind == "texture"


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert prepare.main(["fgmask", "--datapath", str(tmp_path / "nope"), "--dataset", "mvtec"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--datapath" in err and "Traceback" not in err


def test_textures_folder_is_dtd_like(tmp_path):
    out = tmp_path / "tex"
    assert prepare.main(["textures", "--output", str(out), "--per_category", "2", "--side", "64"]) == 0
    files = sorted(out.glob("*/*.jpg"))
    assert len(files) == 16 and len({f.parent.name for f in files}) == 8
    assert Image.open(files[0]).size == (64, 64)


def _flags(root: Path, results: Path, augpath: Path | None) -> list[str]:
    flags = ["--method", "glass", "--dataset", "folder", "--datapath", str(root), "--classes", "ellipse",
             "--results_path", str(results), "--gpu", "-1", "-b", "efficientnet_lite0", "-le", "layer2",
             "-le", "layer3", "--pretrain_embed_dimension", "32", "--target_embed_dimension", "32",
             "--dsc_hidden", "32", "--meta_epochs", "1", "--step", "2", "--limit", "4", "--resize", "64",
             "--imagesize", "64", "--batch_size", "4", "--num_workers", "0", "--fg", "1", "--distribution", "2",
             "--heatmaps", "0"]
    return flags + (["--augpath", str(augpath)] if augpath else [])


def test_training_without_augpath_names_the_textures_command(tmp_path, capsys):
    root = tmp_path / "data"
    write_fg_tree(root, n=4, h=64, w=64, with_test=False)
    assert cli.main(_flags(root, tmp_path / "r", None)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--augpath" in err and "python -m datasets.prepare textures" in err


def test_fg_training_reads_the_generated_masks(tmp_path, monkeypatch, capsys):
    import datasets.torch_datasets as tds

    root = tmp_path / "data"
    write_fg_tree(root, n=6, h=64, w=64, with_test=False)
    textures = tmp_path / "tex"
    prepare.main(["textures", "--output", str(textures), "--per_category", "1", "--side", "64"])
    assert cli.main(_flags(root, tmp_path / "r0", textures)) == 2  # no masks yet: one clear error
    assert "fg_mask" in capsys.readouterr().err
    assert prepare.main(["fgmask", "--datapath", str(root), "--dataset", "folder", "--classes", "ellipse"]) == 0
    read: list[str] = []
    original = tds.load_fg_mask

    def spy(path, preprocessing):
        read.append(Path(path).name)
        fg = original(path, preprocessing)
        assert 0.05 < float(fg.mean()) < 0.6  # an object mask, not the all-ones fallback
        return fg

    monkeypatch.setattr(tds, "load_fg_mask", spy)
    assert cli.main(_flags(root, tmp_path / "r1", textures)) == 0
    trained = {p.name for p in (root / "ellipse" / "train" / "good").iterdir()}
    assert read and set(read) <= trained and len(set(read)) >= 4
