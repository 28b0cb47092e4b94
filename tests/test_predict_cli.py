"""`main.py --test predict` and the Python API end to end on a tiny trained GLASS model, and the bad-input rows
of the README that concern checkpoints and outputs."""
from __future__ import annotations

import csv
import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from cli_helpers import tiny_demo, tiny_glass_flags
from common.errors import UserError
from runner import cli as main
from runner.predict import load


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    demo = tiny_demo(root / "demo")
    results = root / "results"
    assert main.main(tiny_glass_flags(demo, results)) == 0
    return demo, results, results / "models" / "backbone_0" / "mvtec_brick"


def _inputs(demo, folder):
    folder.mkdir()
    sources = sorted((demo.datapath / "brick" / "test").rglob("*.png"))[:3]
    Image.open(sources[0]).save(folder / "a.png")
    Image.open(sources[1]).convert("L").save(folder / "gray.png")  # grayscale
    Image.open(sources[2]).convert("RGBA").save(folder / "rgba.png")  # with alpha
    (folder / "readme.txt").write_text("not an image")
    return folder


def test_training_stored_threshold_and_preprocessing(trained):
    _, _, ckpt_dir = trained
    record = json.loads((ckpt_dir / "toolkit.json").read_text())
    assert record["method"] == "glass" and record["threshold_rule"] == "F1-max on the test set"
    assert record["preprocessing"]["imagesize"] == 64 and record["config"]["backbone_names"] == ["efficientnet_lite0"]
    assert np.isfinite(record["threshold"])


def test_predict_folder_writes_overlays_and_csv(trained, tmp_path):
    demo, _, ckpt_dir = trained
    folder = _inputs(demo, tmp_path / "in")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="readme.txt"):
        code = main.main(["--test", "predict", "--checkpoint", str(ckpt_dir), "--input", str(folder),
                          "--output", str(out), "--save_maps"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [os.path.basename(r["image"]) for r in rows] == ["a.png", "gray.png", "rgba.png"]
    for name in ("a", "gray", "rgba"):
        overlay = np.asarray(Image.open(out / "overlays" / f"{name}.png"))
        assert overlay.shape == (64, 128, 3)
        assert (out / "maps" / f"{name}.tiff").is_file()
    # the CLI and the in-memory API agree, and decisions follow the stored threshold
    detector = load(ckpt_dir)
    scores, maps = detector.predict([folder / "a.png", folder / "gray.png", folder / "rgba.png"])
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, rtol=0, atol=1e-6)
    assert maps.shape == (3, 64, 64) and maps.dtype == np.float32
    assert [r["anomalous"] == "True" for r in rows] == list(detector.decide(scores))
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["method"] == "glass" and len(summary["images"]) == 3


def test_predict_matches_evaluation_scores(trained):
    """The API on the test images gives the scores the evaluation wrote (same preprocessing, same model)."""
    demo, results, ckpt_dir = trained
    main.main(tiny_glass_flags(demo, results) + ["--test", "test", "--save_maps"])
    rows = list(csv.DictReader(open(results / "eval" / "mvtec_brick" / "scores.csv")))
    detector = load(ckpt_dir)
    scores, _ = detector.predict([demo.datapath / r["image"] for r in rows])
    np.testing.assert_allclose(scores, [float(r["score"]) for r in rows], rtol=0, atol=1e-5)


def test_saved_tiffs_feed_the_drop_in_evaluator(trained, tmp_path):
    """--save_maps TIFFs are in the official layout at the original resolution: metrics.evaluate reads them and
    its AU-PRO equals the runner's (same maps, same masks)."""
    from metrics.evaluate import main as evaluate_main

    demo, results, _ = trained
    main.main(tiny_glass_flags(demo, results) + ["--test", "test", "--save_maps"])
    assert evaluate_main(["--anomaly_maps_dir", str(results / "eval/mvtec_brick/tiff"), "--dataset_base_dir",
                          str(demo.datapath), "--output_dir", str(tmp_path), "--evaluated_objects", "brick"]) == 0
    official = json.loads((tmp_path / "metrics.json").read_text())
    row = list(csv.DictReader(open(results / "results.csv")))[0]
    assert official["brick"]["au_pro"] == pytest.approx(float(row["au_pro"]), abs=1e-9)


def test_checkpoint_of_the_other_method(trained, tmp_path, capsys):
    _, _, ckpt_dir = trained
    code = main.main(["--method", "slsg", "--test", "predict", "--checkpoint", str(ckpt_dir), "--input",
                      str(tmp_path), "--output", str(tmp_path / "o")])
    assert code == 2 and "is a GLASS checkpoint, not SLSG" in capsys.readouterr().err


def test_contradicting_backbone_or_size(trained, tmp_path):
    demo, _, ckpt_dir = trained
    image = sorted((demo.datapath / "brick" / "test" / "good").glob("*.png"))[0]
    for flags, needle in ((["-b", "mobilenetv2"], "--backbone_names mobilenetv2: the checkpoint was trained with "
                                                   "--backbone_names efficientnet_lite0"),
                          (["--imagesize", "96"], "--imagesize 96: the checkpoint was trained with --imagesize 64")):
        given = main.parse(["--test", "predict", "--checkpoint", str(ckpt_dir), "--input", str(image), *flags]).given
        with pytest.raises(UserError, match=needle):
            load(ckpt_dir, flags=given)


def test_reference_checkpoint_with_wrong_widths(fixtures_dir, tmp_path, capsys):
    ref = fixtures_dir / "glass-reference"
    image = sorted((ref / "data/mvtec/carpet/test/good").glob("*.png"))[0]
    code = main.main(["--test", "predict", "--checkpoint", str(ref / "results/models/backbone_0/mvtec_carpet"),
                      "--input", str(image), "--output", str(tmp_path / "o"), "-b", "resnet18",
                      "--backbone_weights", str(ref / "backbone_resnet18.pth"), "--target_embed_dimension", "512",
                      "--pretrain_embed_dimension", "512"])
    err = capsys.readouterr().err
    assert code == 2 and "ckpt_best_2.pth does not fit" in err and "--target_embed_dimension" in err


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    assert main.main(["--test", "predict", "--checkpoint", str(tmp_path / "none.pth"), "--input", str(image)]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    assert main.main(["--test", "predict", "--checkpoint", str(bad), "--input", str(image)]) == 2
    err = capsys.readouterr().err
    assert f"--checkpoint: {bad}: cannot read it" in err


def test_unwritable_output_and_results_folders(trained, tmp_path, capsys, monkeypatch):
    demo, _, ckpt_dir = trained
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a folder cannot be made inside a file, even as root
    image = sorted((demo.datapath / "brick" / "test" / "good").glob("*.png"))[0]
    assert main.main(["--test", "predict", "--checkpoint", str(ckpt_dir), "--input", str(image),
                      "--output", str(blocker / "out")]) == 2
    assert "--output: cannot write" in capsys.readouterr().err
    flags = tiny_glass_flags(demo, blocker / "results")
    assert main.main(flags) == 2
    assert "--results_path: cannot write" in capsys.readouterr().err

    if os.geteuid() != 0:  # a real read-only folder (root ignores permission bits)
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert main.main(tiny_glass_flags(demo, ro)) == 2
        assert "--results_path: cannot write" in capsys.readouterr().err


def test_disk_full_while_saving_keeps_previous_file(trained, tmp_path, capsys, monkeypatch):
    demo, results, _ = trained
    csv_before = (results / "results.csv").read_bytes()
    import common.atomic

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(common.atomic.os, "fsync", no_space)
    code = main.main(tiny_glass_flags(demo, results) + ["--test", "test"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "error: cannot write" in err
    assert (results / "results.csv").read_bytes() == csv_before
    assert not list(results.rglob(".*.tmp"))


def test_predict_and_test_read_the_same_pixels(trained, tmp_path):
    """RGBA, palette, 16-bit and grayscale files score the same through predict as through the test-set loader."""
    import torch

    import datasets
    from datasets.samples import Sample

    demo, _, ckpt_dir = trained
    source = np.asarray(Image.open(sorted((demo.datapath / "brick" / "test").rglob("*.png"))[-1]).convert("RGB"))
    rgba = np.dstack([source, np.full(source.shape[:2], 90, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(source).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(source[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(source).convert("L").save(tmp_path / "gray.png")
    files = [tmp_path / f"{n}.png" for n in ("rgba", "palette", "deep", "gray")]
    detector = load(ckpt_dir)
    predicted, _ = detector.predict(files)
    test_set = datasets.TestDataset([Sample(str(f), 0, "good", None) for f in files], detector.preprocessing,
                                    root=str(tmp_path))
    batch = torch.stack([test_set[i]["image"] for i in range(len(files))])
    tested, _ = detector.model.predict(batch)
    np.testing.assert_array_equal(predicted, np.asarray(tested, np.float64))
    # and the RGBA file is its RGB pixels (alpha dropped), as the reference's convert("RGB")
    assert predicted[0] == pytest.approx(detector.predict([source])[0][0], abs=1e-5)  # batch of 1 vs 4


def test_slsg_checkpoint_without_method_flag(fixtures_dir, tmp_path):
    """--test predict picks the method from the checkpoint: no --method needed for an SLSG file."""
    root = fixtures_dir / "slsg-reference"
    image = sorted((root / "data" / "pushpins" / "test").rglob("*.png"))[0]
    assert main.main(["--test", "predict", "--checkpoint", str(root / "pushpins.tch"), "--input", str(image),
                      "--output", str(tmp_path / "o"), "--gpu", "-1"]) == 0
    summary = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert summary["method"] == "slsg" and len(summary["images"]) == 1


def test_the_checkpoint_file_alone_rebuilds_the_model(trained, tmp_path):
    """The best checkpoint file, copied away from its folder and toolkit.json, carries the method, config,
    preprocessing and threshold: load() needs no flag, and scores equal those of the folder."""
    import shutil

    import torch

    demo, _, ckpt_dir = trained
    (best,) = ckpt_dir.glob("ckpt_best_*.pth")
    alone = tmp_path / best.name
    shutil.copy(best, alone)
    record = json.loads((ckpt_dir / "toolkit.json").read_text())
    state = torch.load(alone, weights_only=True)  # plain types only
    assert state["toolkit"]["config"] == record["config"] and state["toolkit"]["threshold"] == record["threshold"]
    images = sorted((demo.datapath / "brick" / "test").rglob("*.png"))[:3]
    from_file, from_folder = load(alone), load(ckpt_dir)
    assert from_file.threshold == record["threshold"] and from_file.preprocessing == from_folder.preprocessing
    np.testing.assert_array_equal(from_file.predict(images)[0], from_folder.predict(images)[0])
