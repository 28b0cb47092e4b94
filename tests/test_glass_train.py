"""GLASS training on the demo data with a real offline backbone (EfficientNet-Lite0 ImageNet weights), through
main.py: detection clearly above chance, reference checkpoint layout, resume, --test test."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from runner import cli as runner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from datasets.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("glass_demo"), seed=0, size=128, n_train=24, n_test_good=8,
                         n_per_defect=4, classes=["brick"])


def _flags(demo, results: Path, *extra: str) -> list[str]:
    return ["--method", "glass", "--dataset", "mvtec", "--datapath", str(demo.datapath), "--augpath",
            str(demo.augpath), "--classes", "brick", "--results_path", str(results), "--gpu", "-1", "--seed", "0",
            "--num_workers", "0", "--heatmaps", "0", "-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3",
            "--pretrain_embed_dimension", "256", "--target_embed_dimension", "256", "--dsc_hidden", "256",
            "--distribution", "2", "--resize", "128", "--imagesize", "128", "--lr", "0.001", *extra]


def _row(results: Path) -> dict:
    with open(results / "results.csv", newline="") as handle:
        return {r["Row Names"]: r for r in csv.DictReader(handle)}["mvtec_brick"]


def test_training_detects_anomalies_and_resumes(demo, tmp_path, capsys):
    results = tmp_path / "res"
    assert runner.main(_flags(demo, results, "--test", "ckpt", "--meta_epochs", "4")) == 0
    row = _row(results)
    # best-on-test (the reference protocol) and, not selected on the test set, the last epoch
    assert float(row["image_auroc"]) >= 0.8 and float(row["pixel_auroc"]) >= 0.8, row
    assert float(row["last_image_auroc"]) >= 0.8 and float(row["last_pixel_auroc"]) >= 0.8, row
    folder = results / "models" / "backbone_0" / "mvtec_brick"
    best = list(folder.glob("ckpt_best_*.pth"))
    assert len(best) == 1 and (folder / "ckpt.pth").is_file()
    assert int(row["best_epoch"]) == int(best[0].stem.rsplit("_", 1)[1])
    state = torch.load(best[0], weights_only=True)
    assert set(state) >= {"discriminator", "pre_projection"}
    assert set(state["discriminator"]) == {"body.block1.0.weight", "body.block1.0.bias", "body.block1.1.weight",
                                           "body.block1.1.bias", "body.block1.1.running_mean",
                                           "body.block1.1.running_var", "body.block1.1.num_batches_tracked",
                                           "tail.0.weight"}
    assert set(state["pre_projection"]) == {"layers.0fc.weight", "layers.0fc.bias"}
    # 4 epochs x 3 iterations (24 images, batch 8) x 22 BN forwards
    latest = torch.load(folder / "ckpt.pth", weights_only=True)
    assert int(latest["discriminator"]["body.block1.1.num_batches_tracked"]) == 4 * 3 * 22
    assert latest["epoch"] == 3 and len(latest["history"]) == 4

    # a finished run is not retrained silently: it says so and evaluates the same model
    capsys.readouterr()
    assert runner.main(_flags(demo, results, "--test", "ckpt", "--meta_epochs", "4")) == 0
    assert "already trained for 4 epoch" in capsys.readouterr().out
    assert _row(results)["image_auroc"] == row["image_auroc"]
    # --test test evaluates the stored best checkpoint
    assert runner.main(_flags(demo, results, "--test", "test")) == 0
    assert _row(results)["image_auroc"] == row["image_auroc"]


def _tiny_method(demo, results: Path, *extra: str):
    import datasets
    from glass.method import GlassMethod

    tiny = ["--pretrain_embed_dimension", "64", "--target_embed_dimension", "64", "--dsc_hidden", "32",
            "--resize", "64", "--imagesize", "64", "--eval_epochs", "0", "--step", "6", "--limit", "8"]
    invocation = runner.parse(_flags(demo, results, *tiny, *extra))
    method = GlassMethod.build(invocation.config, torch.device("cpu"), "brick", "mvtec", str(demo.augpath))
    train = datasets.load_samples("mvtec", str(demo.datapath), "brick", "train", fg=True)
    return method, train, GlassMethod.checkpoint_path(results, "mvtec", "brick")


def test_resume_continues_bit_identically(demo, tmp_path):
    method, train, straight = _tiny_method(demo, tmp_path / "a", "--meta_epochs", "2")
    record = method.fit(train, straight, None)
    assert (record["best_epoch"], record["last_epoch"]) == (1, 1)  # no evaluation: the last epoch is kept
    method, train, resumed = _tiny_method(demo, tmp_path / "b", "--meta_epochs", "1")
    method.fit(train, resumed, None)
    method, train, resumed = _tiny_method(demo, tmp_path / "b", "--meta_epochs", "2")
    assert method.fit(train, resumed, None)["last_epoch"] == 1
    a = torch.load(straight / "ckpt.pth", weights_only=True)
    b = torch.load(resumed / "ckpt.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for part in ("discriminator", "pre_projection"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    # --retrain starts over
    method, train, resumed = _tiny_method(demo, tmp_path / "b", "--meta_epochs", "1")
    method.fit(train, resumed, None, retrain=True)
    c = torch.load(resumed / "ckpt.pth", weights_only=True)
    assert c["epoch"] == 0 and len(c["history"]) == 1
    assert [p.name for p in resumed.glob("ckpt_best_*.pth")] == ["ckpt_best_0.pth"]


def test_embedding_cache_gives_the_same_training(demo, tmp_path):
    """The clean-image embedding cache (default) skips the clean images' backbone pass and changes no bit; batch 5
    leaves a short last batch (24 = 4 x 5 + 4), whose centre term then also comes from the cache."""
    states, embedded = {}, {}
    for name, cache in (("cached", "4"), ("plain", "0")):
        method, train, folder = _tiny_method(demo, tmp_path / name, "--meta_epochs", "2", "--batch_size", "5",
                                             "--embedding_cache", cache)
        counts, embed = [], method.net.embed
        method.net.embed = lambda images, embed=embed, counts=counts: counts.append(len(images)) or embed(images)
        method.fit(train, folder, None)
        states[name], embedded[name] = torch.load(folder / "ckpt.pth", weights_only=True), sum(counts)
    # 2 epochs x 2 iterations (limit 8, batch 5): 20 clean images skipped, and the 2 short-batch passes of 4
    assert embedded["plain"] - embedded["cached"] == 2 * 2 * 5 + 2 * 4
    for part in ("discriminator", "pre_projection"):
        for key, value in states["plain"][part].items():
            assert torch.equal(value, states["cached"][part][key]), (part, key)
    assert [r["loss"] for r in states["plain"]["history"]] == [r["loss"] for r in states["cached"]["history"]]
