"""Shared by the end-to-end CLI tests: a tiny generated dataset and tiny GLASS flags (plumbing, not accuracy)."""
from __future__ import annotations

from pathlib import Path

from datasets.demo import generate_demo


def tiny_demo(root: Path, classes=("brick",)):
    return generate_demo(root, size=64, n_train=8, n_test_good=2, n_per_defect=1, classes=list(classes))


def tiny_glass_flags(demo, results: Path, epochs: int = 1) -> list[str]:
    return ["--method", "glass", "--dataset", "mvtec", "--datapath", str(demo.datapath),
            "--augpath", str(demo.augpath), "--results_path", str(results), "--gpu", "-1", "--seed", "0",
            "-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3",
            "--pretrain_embed_dimension", "64", "--target_embed_dimension", "64", "--dsc_hidden", "64",
            "--meta_epochs", str(epochs), "--step", "5", "--limit", "8", "--resize", "64", "--imagesize", "64",
            "--batch_size", "4", "--num_workers", "0", "--fg", "0", "--distribution", "2", "--heatmaps", "0"]
