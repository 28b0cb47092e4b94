"""Input handling of `--test predict` and the Python API: formats, folders, globs, checkpoint detection."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from datasets.image_io import read_rgb, to_rgb
from runner.deployment import deployment_path, f1_max_threshold, held_out_threshold
from runner.predict import expand_inputs
from runner.stored_model import detect_method


def _files_of_every_mode(folder):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(gray).save(folder / "g.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128  # half transparent red
    Image.fromarray(rgba, "RGBA").save(folder / "a.png")
    Image.fromarray(gray.astype(np.uint16) * 1000).save(folder / "d.png")
    Image.fromarray(gray).convert("P").save(folder / "p.png")
    return gray


def test_one_reader_for_files_images_and_arrays(tmp_path):
    """Training, test and predict read through read_rgb / to_rgb: the same pixels for a file, its opened PIL image
    and its array; alpha is dropped (as the reference's convert("RGB")), 16-bit keeps the high byte."""
    gray = _files_of_every_mode(tmp_path)
    out_gray = np.asarray(read_rgb(tmp_path / "g.png"))
    assert out_gray.shape == (8, 8, 3) and (out_gray[..., 1] == gray).all()
    out_rgba = np.asarray(read_rgb(tmp_path / "a.png"))
    assert out_rgba.shape == (8, 8, 3) and tuple(out_rgba[0, 0]) == (200, 0, 0)
    out_16 = np.asarray(read_rgb(tmp_path / "d.png"))
    assert (out_16[..., 0] == ((gray.astype(np.int64) * 1000) >> 8)).all()
    assert (np.asarray(read_rgb(tmp_path / "p.png"))[..., 2] == gray).all()
    for name in ("g", "a", "d", "p"):
        from_file = np.asarray(read_rgb(tmp_path / f"{name}.png"))
        with Image.open(tmp_path / f"{name}.png") as opened:
            assert (np.asarray(to_rgb(opened)) == from_file).all(), name


def test_huge_images_are_reduced_when_decoded(tmp_path):
    Image.new("RGB", (6000, 4000), (10, 20, 30)).save(tmp_path / "big.jpg", quality=90)
    pil = read_rgb(tmp_path / "big.jpg", max_side=1024)
    assert min(pil.size) <= 2048 and pil.size[0] / pil.size[1] == pytest.approx(1.5, abs=0.01)


def test_corrupt_image_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match="bad.png"):
        read_rgb(tmp_path / "bad.png")


def test_expand_inputs_folder_glob_and_skips(tmp_path):
    for name in ["b.png", "a.JPG", "sub/c.bmp"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="notes.txt"):
        images, root = expand_inputs(str(tmp_path))
    assert [p.relative_to(tmp_path).as_posix() for p in images] == ["a.JPG", "b.png", "sub/c.bmp"]
    assert root == tmp_path
    images, _ = expand_inputs(str(tmp_path / "*.png"))
    assert [p.name for p in images] == ["b.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no image files"):
        expand_inputs(str(empty))
    with pytest.raises(UserError, match="--input"):
        expand_inputs(str(tmp_path / "nothing-*.png"))


def test_detect_method_from_reference_checkpoints(fixtures_dir, tmp_path):
    glass_dir = fixtures_dir / "glass-reference" / "results" / "models" / "backbone_0" / "mvtec_carpet"
    assert detect_method(glass_dir) == "glass"
    assert detect_method(glass_dir / "ckpt_best_2.pth") == "glass"
    assert detect_method(fixtures_dir / "slsg-reference" / "pushpins.tch") == "slsg"
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(UserError, match="neither a GLASS nor an SLSG"):
        detect_method(other)
    with pytest.raises(UserError, match="not found"):
        detect_method(tmp_path / "missing.pth")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="no GLASS"):
        detect_method(tmp_path / "empty_dir")


def test_thresholds():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.5, 0.9])
    # candidates: >=0.5 gives P=2/3,R=1 (F1 .8); >=0.9 gives P=1,R=.5 (F1 .667); >=0.6 gives P=.5,R=.5
    assert f1_max_threshold(labels, scores) == 0.5
    assert held_out_threshold(np.arange(101.0)) == pytest.approx(99.0)


def test_deployment_sidecar_names(tmp_path):
    assert deployment_path(tmp_path) == tmp_path / "toolkit.json"
    assert deployment_path(tmp_path / "mvtec_x.tch") == tmp_path / "mvtec_x.toolkit.json"
    assert deployment_path(tmp_path / "mvtec_x_last.tch") == tmp_path / "mvtec_x.toolkit.json"
