"""Demo-data generator (datasets/demo.py): layout, exact masks, area bounds, determinism, idempotence, LOCO."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import UserError
from datasets.demo import (LINE_CLASSES, MAX_AREA, MIN_AREA, _coin_scene, _make_defect, _product_defects,
                           generate_demo, generate_loco_demo, main)
from datasets.demodata.defects import OBJECT_DEFECTS, TEXTURE_DEFECTS, missing_piece
from datasets.demodata.loco import DEFECTS, LOCO_CLASS
from datasets.demodata.products import MAX_SHIFT, render
from datasets.demodata.sources import coins, crop_texture, texture_source

SMALL = dict(size=128, n_train=4, n_test_good=2, n_per_defect=2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo") / "d", seed=0, variant="hard", **SMALL)


def _read(path):
    return np.asarray(Image.open(path))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_complete(demo):
    root = demo.datapath
    assert demo.classes == ["brick", "gravel", "grass", "coins"]
    expected_types = {"brick": set(TEXTURE_DEFECTS), "coins": set(OBJECT_DEFECTS)}
    for cls in demo.classes:
        train = sorted(p.name for p in (root / cls / "train" / "good").iterdir())
        assert train == [f"{i:03d}.png" for i in range(4)]
        assert sorted(p.name for p in (root / "fg_mask" / cls).iterdir()) == train
        types = {p.name for p in (root / cls / "test").iterdir()}
        assert types == {"good"} | expected_types.get(cls, set(TEXTURE_DEFECTS))
        assert len(list((root / cls / "test" / "good").iterdir())) == 2
        assert not (root / cls / "ground_truth" / "good").exists()
        for kind in types - {"good"}:
            stems = sorted(p.stem for p in (root / cls / "test" / kind).iterdir())
            masks = sorted(p.name for p in (root / cls / "ground_truth" / kind).iterdir())
            assert masks == [f"{s}_mask.png" for s in stems] and len(stems) == 2
            for stem in stems:
                image = _read(root / cls / "test" / kind / f"{stem}.png")
                mask = _read(root / cls / "ground_truth" / kind / f"{stem}_mask.png")
                assert image.shape == (128, 128, 3) and image.dtype == np.uint8
                assert mask.shape == (128, 128) and set(np.unique(mask)) == {0, 255}
                assert MIN_AREA <= (mask > 0).mean() <= MAX_AREA
    for cls in ("brick", "gravel", "grass"):
        assert (_read(root / "fg_mask" / cls / "000.png") == 255).all()
    fg = _read(root / "fg_mask" / "coins" / "000.png")
    assert set(np.unique(fg)) == {0, 255} and 0.03 < (fg > 0).mean() < 0.4
    cats = [p for p in demo.augpath.iterdir() if p.is_dir()]
    assert len(cats) >= 6 and all(len(list(c.glob("*.jpg"))) >= 1 for c in cats)
    manifest = json.loads((root.parent / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["size"] == 128 and len(manifest["files"]) > 100


@pytest.mark.parametrize("kind", sorted(TEXTURE_DEFECTS))
def test_texture_defect_masks_are_exact(kind):
    rng = np.random.default_rng(1)
    for _ in range(3):
        clean = crop_texture(texture_source("gravel"), "bottom", 128, rng)
        image, mask = _make_defect(TEXTURE_DEFECTS[kind], clean, np.ones((128, 128), np.float32), rng)
        _check_exact(np.clip(np.rint(clean), 0, 255).astype(np.uint8), image, mask)


@pytest.mark.parametrize("kind", sorted(OBJECT_DEFECTS))
def test_object_defect_masks_are_exact_and_on_the_object(kind):
    rng = np.random.default_rng(2)
    coin_list = coins()
    assert len(coin_list) == 24
    for k in range(3):
        clean, bg, alpha = _coin_scene(coin_list[k], 128, 1.0, rng)
        extra = {"background": bg} if OBJECT_DEFECTS[kind] is missing_piece else {}
        image, mask = _make_defect(OBJECT_DEFECTS[kind], clean, alpha, rng, **extra)
        _check_exact(np.clip(np.rint(clean), 0, 255).astype(np.uint8), image, mask)
        assert (alpha[mask > 0] > 0).all()  # defects lie on the coin


def _check_exact(clean, image, mask):
    changed = (image != clean).any(axis=-1)
    inside = mask > 0
    assert not changed[~inside].any()             # the image equals the clean crop outside the mask
    assert changed[inside].mean() > 0.5           # and the defect really alters the masked pixels
    assert MIN_AREA <= inside.mean() <= MAX_AREA


def test_train_crops_from_top_half_test_from_bottom():
    source = np.zeros((512, 512, 3), np.float32)
    source[256:] = 255
    rng = np.random.default_rng(0)
    assert all(crop_texture(source, "top", 64, rng).max() == 0 for _ in range(20))
    assert all(crop_texture(source, "bottom", 64, rng).min() > 254.99 for _ in range(20))


def test_deterministic_and_seed_dependent(tmp_path):
    kw = dict(SMALL, classes=("gravel", "coins", "coin"))
    a = _files(generate_demo(tmp_path / "a", seed=3, **kw).datapath.parent)
    b = _files(generate_demo(tmp_path / "b", seed=3, **kw).datapath.parent)
    c = _files(generate_demo(tmp_path / "c", seed=4, **kw).datapath.parent)
    assert a == b
    assert a.keys() == c.keys() and a != c
    differing = [k for k in a if k.endswith(".png") and a[k] != c[k]]
    assert len(differing) > 0.8 * sum(k.endswith(".png") and "fg_mask/gravel" not in k for k in a)


def test_idempotent_and_rebuilds_incomplete(tmp_path):
    kw = dict(SMALL, classes=("brick",))
    data = generate_demo(tmp_path / "d", **kw)
    manifest = data.datapath.parent / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    generate_demo(tmp_path / "d", **kw)
    assert manifest.stat().st_mtime_ns == stamp  # re-used, not rewritten
    victim = data.datapath / "brick" / "test" / "good" / "001.png"
    original = victim.read_bytes()
    victim.unlink()
    generate_demo(tmp_path / "d", **kw)
    assert victim.read_bytes() == original
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    generate_demo(tmp_path / "d", seed=1, **kw)  # other parameters: rebuilt
    assert json.loads(manifest.read_text())["seed"] == 1


def test_refuses_foreign_folder_and_bad_arguments(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="manifest"):
        generate_demo(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="carpet"):
        generate_demo(tmp_path / "x", classes=("carpet",), **SMALL)
    with pytest.raises(UserError, match="variant"):
        generate_demo(tmp_path / "x", variant="easy", **SMALL)


def test_loco_demo(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "l"), "--loco", "--size", "160"]) == 0
    assert "--datapath" in capsys.readouterr().out
    data = generate_loco_demo(tmp_path / "l", size=160)
    root = data.datapath / LOCO_CLASS
    assert data.classes == [LOCO_CLASS]
    config = json.loads((root / "defects_config.json").read_text())
    assert [c["defect_name"] for c in config] == [d[0] for d in DEFECTS]
    values = {c["pixel_value"]: c for c in config}
    for c in config:
        assert set(c) == {"defect_name", "pixel_value", "saturation_threshold", "relative_saturation"}
        assert 1 <= c["pixel_value"] <= 255
        assert not c["relative_saturation"] or 0 < c["saturation_threshold"] <= 1
    for folder in ("train/good", "validation/good", "test/good"):
        assert len(list((root / folder).glob("*.png"))) >= 4
    assert not (root / "ground_truth" / "good").exists()
    names = set()
    for kind in ("logical_anomalies", "structural_anomalies"):
        stems = sorted(p.stem for p in (root / "test" / kind).glob("*.png"))
        assert sorted(p.name for p in (root / "ground_truth" / kind).iterdir()) == stems and len(stems) == 6
        for stem in stems:
            image = _read(root / "test" / kind / f"{stem}.png")
            channels = sorted((root / "ground_truth" / kind / stem).glob("*.png"))
            assert channels and channels[0].name == "000.png"
            for ch in channels:
                gt = _read(ch)
                assert gt.shape == image.shape[:2] == (96, 160)
                positive = np.unique(gt[gt > 0])
                assert positive.size == 1 and int(positive[0]) in values
                names.add(values[int(positive[0])]["defect_name"])
    assert names == {d[0] for d in DEFECTS}
    again = _files(generate_loco_demo(tmp_path / "l2", size=160).datapath)
    assert again == _files(data.datapath)


def test_loco_demo_counts(tmp_path):
    assert main(["--out", str(tmp_path / "l"), "--loco", "--size", "160", "--n_train", "3", "--n_validation", "2",
                 "--n_test_good", "2", "--n_per_defect", "3"]) == 0
    root = tmp_path / "l" / "loco" / LOCO_CLASS
    found = {folder: len(list((root / folder).glob("*.png"))) for folder in
             ("train/good", "validation/good", "test/good", "test/logical_anomalies", "test/structural_anomalies")}
    assert found == {"train/good": 3, "validation/good": 2, "test/good": 2, "test/logical_anomalies": 3,
                     "test/structural_anomalies": 3}
    assert main(["--out", str(tmp_path / "m"), "--n_validation", "2", "--classes", "coin"]) == 2  # LOCO only
    with pytest.raises(UserError, match="count"):
        generate_loco_demo(tmp_path / "x", size=160, n_train=0)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("line") / "d", seed=0, **SMALL)


def test_line_variant_is_the_default_and_complete(line):
    root = line.datapath
    assert line.classes == list(LINE_CLASSES) == ["coin", "tile", "flange", "label"]
    for cls in line.classes:
        train = sorted(p.name for p in (root / cls / "train" / "good").iterdir())
        assert train == [f"{i:03d}.png" for i in range(4)]
        assert sorted(p.name for p in (root / "fg_mask" / cls).iterdir()) == train
        assert {p.name for p in (root / cls / "test").iterdir()} == {"good"} | set(_product_defects(cls))
        for kind in _product_defects(cls):
            for image_path in sorted((root / cls / "test" / kind).iterdir()):
                mask = _read(root / cls / "ground_truth" / kind / f"{image_path.stem}_mask.png")
                assert _read(image_path).shape == (128, 128, 3) and set(np.unique(mask)) == {0, 255}
                assert MIN_AREA <= (mask > 0).mean() <= MAX_AREA
    assert (_read(root / "fg_mask" / "tile" / "000.png") == 255).all()


@pytest.mark.parametrize("cls", LINE_CLASSES)
def test_line_product_varies_only_by_pose_and_lighting(cls):
    """One product: every frame's foreground has the same area (+-3 %) and a centroid within the pose shift."""
    rng = np.random.default_rng(5)
    scenes = [render(cls, 128, rng) for _ in range(6)]
    areas = np.array([(s.fg > 0).sum() for s in scenes], np.float64)
    assert areas.max() / areas.min() < 1.03 or cls == "label"  # the label's corners leave the frame when rotated
    for s in scenes:
        ys, xs = np.nonzero(s.fg)
        assert abs(ys.mean() - 63.5) <= MAX_SHIFT * 128 + 1.5 and abs(xs.mean() - 63.5) <= MAX_SHIFT * 128 + 1.5
    # the same part: two frames, aligned by their pose, are far closer than the frame and another product
    other = render("flange" if cls != "flange" else "coin", 128, rng).image
    same = np.abs(scenes[0].image - scenes[1].image).mean()
    assert same < np.abs(scenes[0].image - other).mean()


@pytest.mark.parametrize("cls", LINE_CLASSES)
def test_line_defect_masks_are_exact_and_on_the_part(cls):
    rng = np.random.default_rng(3)
    for kind, fn in _product_defects(cls).items():
        scene = render(cls, 128, rng)
        extra = {"background": scene.background} if fn is missing_piece else {}
        image, mask = _make_defect(fn, scene.image, scene.region, rng, **extra)
        _check_exact(np.clip(np.rint(scene.image), 0, 255).astype(np.uint8), image, mask)
        assert (scene.region[mask > 0] > 0).all(), kind


def test_cli_variant_hard(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "h"), "--variant", "hard", "--classes", "coins", "--size", "64",
                 "--n_train", "2", "--n_test_good", "1", "--n_per_defect", "1"]) == 0
    assert "classes    coins" in capsys.readouterr().out
    assert json.loads((tmp_path / "h" / "manifest.json").read_text())["classes"] == ["coins"]
