"""The runner in main.py: good-images-only training, per-class fg decisions, the results table."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from cli_helpers import tiny_demo, tiny_glass_flags
from runner import cli as main
from runner.predict import load


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory.mktemp("runner") / "demo")


def test_good_images_only_folder(demo, tmp_path, capsys):
    """A flat folder of good images: trains on all but a held-out share, stores a threshold from the held-out
    scores, reports the last epoch, needs no ground truth; predict then uses that threshold."""
    folder = tmp_path / "bracket"
    folder.mkdir()
    for path in sorted((demo.datapath / "brick" / "train" / "good").glob("*.png")):
        shutil.copy(path, folder / path.name)
    results = tmp_path / "results"
    flags = tiny_glass_flags(demo, results, epochs=2)
    flags[flags.index("--dataset") + 1] = "folder"
    flags[flags.index("--datapath") + 1] = str(folder)
    assert main.main(flags) == 0
    out = capsys.readouterr().out
    assert "no test set" in out
    ckpt_dir = results / "models" / "backbone_0" / "folder_bracket"
    record = json.loads((ckpt_dir / "toolkit.json").read_text())
    assert record["threshold_rule"] == "quantile 0.99 of 2 held-out good images"
    rows = list(csv.DictReader(open(results / "results.csv")))
    assert rows[0]["Row Names"] == "folder_bracket" and rows[0]["last_epoch"] == "1"
    assert rows[0]["image_auroc"] == ""  # nothing to measure without a test set

    # the held-out images are exactly the ones the threshold came from: re-scoring them reproduces it
    order = np.random.default_rng(0).permutation(8)
    held = [sorted(folder.glob("*.png"))[i] for i in sorted(order[:2])]
    detector = load(ckpt_dir)
    scores, _ = detector.predict(held)
    assert record["threshold"] == pytest.approx(float(np.quantile(scores, 0.99)), abs=1e-6)


def test_fg_masks_follow_the_per_class_table(tmp_path):
    """--fg 2 asks for foreground masks only where the built-in table says so (MPDD: never)."""
    from glass.config import GlassConfig
    from glass.method import GlassMethod

    assert GlassMethod.wants_fg_masks(GlassConfig(fg=2), "mpdd", "tubes") is False
    assert GlassMethod.wants_fg_masks(GlassConfig(fg=2), "mvtec", "bottle") is True
    assert GlassMethod.wants_fg_masks(GlassConfig(fg=0), "mvtec", "bottle") is False
    assert GlassMethod.wants_fg_masks(GlassConfig(fg=1), "mpdd", "tubes") is True


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(demo, tmp_path, capsys, monkeypatch):
    import torch

    import glass.trainer

    original = glass.trainer.losses
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 3:  # epoch 0 (2 iterations: 8 images, batch 4) and one more stay finite
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(glass.trainer, "losses", poisoned)
    results = tmp_path / "results"
    assert main.main(tiny_glass_flags(demo, results, epochs=3)) == 2
    err = capsys.readouterr().err
    assert "the loss became nan at epoch 1" in err and "last good checkpoint is kept" in err
    state = torch.load(results / "models/backbone_0/mvtec_brick/ckpt.pth", weights_only=True)
    assert state["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in state["discriminator"].values() if v.is_floating_point())
    assert not list(results.rglob(".*.tmp"))


def test_a_recorded_run_replays_to_the_same_results(demo, tmp_path, capsys):
    """`main.py --config <results>/run_<...>.json` reruns that run (flags from the file, the command line
    overriding): trained again into another folder, it writes the same results.csv."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert main.main(tiny_glass_flags(demo, first, epochs=2)) == 0
    (record,) = first.glob("run_glass_*.json")
    assert json.loads(record.read_text())["args"]["meta_epochs"] == 2
    assert main.main(["--config", str(record), "--results_path", str(second)]) == 0
    assert (second / "results.csv").read_bytes() == (first / "results.csv").read_bytes()
    replayed = json.loads(next(second.glob("run_glass_*.json")).read_text())["args"]
    assert replayed["results_path"] == str(second) and replayed["target_embed_dimension"] == 64


def test_config_is_built_once_and_validated(tmp_path):
    """The CLI edge gives each method its typed config; shared flags do not leak into it."""
    from glass.config import GlassConfig
    from slsg.config import SlsgConfig

    glass = main.parse(["--batch_size", "3", "--lr", "1e5", "--seed", "7"])
    assert isinstance(glass.config, GlassConfig) and (glass.config.batch_size, glass.config.lr,
                                                      glass.config.seed) == (3, 1e5, 7)
    slsg = main.parse(["--method", "slsg"])
    assert isinstance(slsg.config, SlsgConfig) and (slsg.config.batch_size, slsg.config.imagesize,
                                                    slsg.config.lr) == (4, 256, 0.04)
    assert slsg.options.batch_size == 4 and glass.options.batch_size == 3
    assert main.parse(["--method", "slsg", "--pretrain", "off"]).config.pretrain == "none"
