"""TensorBoard event files: where the reference writes them, its tags and cadence, values equal to the training
history and results.csv; ``--tensorboard 0`` writes none."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from cli_helpers import tiny_demo, tiny_glass_flags
from runner.results import read_results_csv
from common.tensorboard_log import TrainingLog, tb_folder

REFERENCE_ITERATION_TAGS = {"loss", "p_true", "p_fake", "r_t", "r_g", "r_f"}
REFERENCE_EVAL_TAGS = {"i-auroc", "p-auroc"}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory.mktemp("tb_demo"))


@pytest.fixture(scope="module")
def glass_run(demo, tmp_path_factory):
    results = tmp_path_factory.mktemp("tb_glass")
    assert main.main(tiny_glass_flags(demo, results, epochs=2)) == 0
    return results


def test_glass_writes_the_reference_tags_per_iteration_and_evaluation(glass_run):
    folder = glass_run / "models" / "backbone_0" / "mvtec_brick" / "tb"
    assert folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
    logged = scalars(folder)
    assert REFERENCE_ITERATION_TAGS | REFERENCE_EVAL_TAGS <= set(logged)
    state = torch.load(folder.parent / "ckpt.pth", map_location="cpu", weights_only=True)
    history = state["history"]
    total = sum(h["iterations"] for h in history)
    assert total > len(history)  # several iterations per epoch: the per-iteration cadence is visible
    for tag in REFERENCE_ITERATION_TAGS:
        assert [step for step, _ in logged[tag]] == list(range(total)), tag
    start = 0
    losses = np.array([v for _, v in logged["loss"]])
    for h in history:  # the epoch means the trainer prints are the means of the logged iterations
        epoch_losses = losses[start:start + h["iterations"]]
        assert float(epoch_losses.mean()) == pytest.approx(h["loss"], rel=1e-5)
        start += h["iterations"]
    for tag, key in (("i-auroc", "image_auroc"), ("p-auroc", "pixel_auroc")):
        assert logged[tag] == [(h["epoch"], pytest.approx(h[key], abs=1e-6)) for h in history]
    for tag in ("p_true", "p_fake"):
        assert all(0.0 <= v <= 1.0 or math.isnan(v) for _, v in logged[tag])


def test_glass_final_metrics_equal_results_csv(glass_run):
    row = read_results_csv(glass_run / "results.csv")["mvtec_brick"]
    logged = scalars(glass_run / "models" / "backbone_0" / "mvtec_brick" / "tb")
    for prefix, epoch_key, keys in (("best/", "best_epoch", ("image_auroc", "pixel_auroc", "au_pro")),
                                    ("last/", "last_epoch", ("last_image_auroc", "last_pixel_auroc", "last_au_pro"))):
        for key, tag in zip(keys, ("i-auroc", "p-auroc", "au-pro")):
            assert logged[prefix + tag] == [(int(row[epoch_key]), pytest.approx(row[key], abs=1e-6))]


def test_tensorboard_0_writes_no_event_file(demo, tmp_path):
    assert main.main(tiny_glass_flags(demo, tmp_path, epochs=1) + ["--tensorboard", "0"]) == 0
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
    assert not list(tmp_path.rglob("tb"))


def test_slsg_logs_loss_and_evaluations_the_same_way(demo, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main.main(["--method", "slsg", "--dataset", "mvtec", "--datapath", str(demo.datapath),
                          "--augpath", str(demo.augpath), "--classes", "brick", "--imagesize", "96", "--steps", "4",
                          "--batch_size", "1",
                          "--eval_every", "2", "--pretrain", "none", "--num_workers", "0", "--heatmaps", "0",
                          "--gpu", "-1", "--results_path", str(tmp_path)])
    assert code == 0
    folder = tmp_path / "models" / "slsg" / "mvtec_brick" / "tb"
    assert folder == tb_folder(tmp_path / "models" / "slsg" / "mvtec_brick.tch")
    logged = scalars(folder)
    assert [s for s, _ in logged["loss"]] == [0, 1, 2, 3]
    assert [s for s, _ in logged["i-auroc"]] == [2, 4] and [s for s, _ in logged["p-auroc"]] == [2, 4]
    assert logged["lr"][0][1] == pytest.approx(0.04)
    row = read_results_csv(tmp_path / "results.csv")["mvtec_brick"]
    assert logged["best/i-auroc"] == [(int(row["best_epoch"]), pytest.approx(row["image_auroc"], abs=1e-6))]


def test_values_are_copied_once_per_flush_and_resume_continues_the_step(tmp_path):
    log = TrainingLog(tmp_path / "tb", start_iteration=5)
    for value in (1.0, 2.0, 3.0):
        log.iteration({"loss": torch.tensor(value), "p_true": value / 10})
    assert not list((tmp_path / "tb").glob("*"))  # nothing written inside the iteration loop
    log.close()
    logged = scalars(tmp_path / "tb")
    assert logged["loss"] == [(5, 1.0), (6, 2.0), (7, 3.0)]
    assert logged["p_true"] == [(5, pytest.approx(0.1)), (6, pytest.approx(0.2)), (7, pytest.approx(0.3))]
    off = TrainingLog(tmp_path / "off", enabled=False)
    off.iteration({"loss": 1.0})
    off.evaluation(0, {"image_auroc": 0.5})
    off.close()
    assert not (tmp_path / "off").exists()
