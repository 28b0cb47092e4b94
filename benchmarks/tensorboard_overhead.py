"""TensorBoard logging cost: GLASS training epochs with ``--tensorboard 1`` vs ``--tensorboard 0``, alternated.

    OMP_NUM_THREADS=1 python benchmarks/tensorboard_overhead.py [--repeats 3] [--epochs 4] [--size 128] [--small_heads]

Each run trains a small GLASS model (EfficientNet-Lite0, offline weights) on generated demo images through
``main.py``; the per-epoch ``seconds`` the trainer records (the flush of the event file included) are compared. The
first epoch is left out (it also imports TensorBoard and builds the caches). Prints the median ratio on / off.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main  # noqa: E402
from datasets.demo import generate_demo  # noqa: E402


def epoch_seconds(results: Path) -> list[float]:
    state = torch.load(results / "models" / "backbone_0" / "mvtec_brick" / "ckpt.pth", map_location="cpu",
                       weights_only=True)
    return [float(h["seconds"]) for h in state["history"]][1:]


def run(flags: list[str], results: Path, tensorboard: int) -> list[float]:
    assert main.main(flags + ["--results_path", str(results), "--tensorboard", str(tensorboard)]) == 0
    return epoch_seconds(results)


def main_(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--small_heads", action="store_true",
                        help="64-d embeddings, 64 hidden, 5 ascent steps: ~0.1 s epochs, the worst case for overhead")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo = generate_demo(tmp / "demo", size=args.size, n_train=24, n_test_good=2, n_per_defect=1,
                             classes=["brick"])
        flags = ["--method", "glass", "--dataset", "mvtec", "--datapath", str(demo.datapath), "--augpath",
                 str(demo.augpath), "--gpu", "-1", "-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3",
                 "--meta_epochs", str(args.epochs), "--eval_epochs", "0", "--resize", str(args.size), "--imagesize",
                 str(args.size), "--batch_size", "4", "--num_workers", "0", "--fg", "0", "--distribution", "2",
                 "--heatmaps", "0", "--classes", "brick"]
        if args.small_heads:
            flags += ["--pretrain_embed_dimension", "64", "--target_embed_dimension", "64", "--dsc_hidden", "64",
                      "--step", "5"]
        on, off = [], []
        for repeat in range(args.repeats):  # alternated, so that load changes hit both
            off += run(flags, tmp / f"off{repeat}", 0)
            on += run(flags, tmp / f"on{repeat}", 1)
        ratio = float(np.median(on) / np.median(off))
        heads = "small" if args.small_heads else "default"
        print(f"threads {args.threads}, {args.size} px, {heads} heads, batch 4, 24 training images "
              f"(6 iterations/epoch), {len(on)} epochs each")
        print(f"median epoch seconds: tensorboard on {np.median(on):.3f}, off {np.median(off):.3f}; "
              f"ratio on/off {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
