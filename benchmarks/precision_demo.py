"""The metric change of ``--precision bf16`` against fp32 on a demo class (GLASS, CPU or GPU).

    python benchmarks/precision_demo.py [--classes brick] [--epochs 4] [--size 128] [--gpu -1]

Trains and evaluates the same class twice from the same seed through main.py (EfficientNet-Lite0 layer2+layer3,
the test suite's settings, offline weights), fp32 then bf16, and prints both metric rows and their difference.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEYS = ("image_auroc", "pixel_auroc", "au_pro", "pixel_pro")


def main(argv=None) -> int:
    import main as runner
    from datasets.demo import generate_demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default="brick")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--gpu", type=int, default=-1)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="precision-demo-"))
    demo = generate_demo(work / "data", seed=0, size=args.size, n_train=24, n_test_good=8, n_per_defect=4,
                         classes=[args.classes])
    rows = {}
    for name in ("fp32", "bf16"):
        results = work / name
        flags = ["--method", "glass", "--dataset", "mvtec", "--datapath", str(demo.datapath), "--augpath",
                 str(demo.augpath), "--classes", args.classes, "--results_path", str(results), "--gpu",
                 str(args.gpu), "--seed", "0", "--num_workers", "0", "--heatmaps", "0", "-b", "efficientnet_lite0",
                 "-le", "layer2", "-le", "layer3", "--pretrain_embed_dimension", "256",
                 "--target_embed_dimension", "256", "--dsc_hidden", "256", "--distribution", "2", "--resize",
                 str(args.size), "--imagesize", str(args.size), "--lr", "0.001", "--meta_epochs", str(args.epochs),
                 "--precision", name]
        if runner.main(flags) != 0:
            return 1
        with open(results / "results.csv", newline="") as handle:
            rows[name] = {r["Row Names"]: r for r in csv.DictReader(handle)}[f"mvtec_{args.classes}"]
    print(f"\nprecision_demo: demo class {args.classes}, {args.size}px, {args.epochs} epochs, best-on-test epoch")
    for name, row in rows.items():
        print(f"  {name}: " + "  ".join(f"{k} {float(row[k]):.4f}" for k in KEYS) + f"  best_epoch {row['best_epoch']}")
    print("  bf16 - fp32: " + "  ".join(f"{k} {float(rows['bf16'][k]) - float(rows['fp32'][k]):+.4f}" for k in KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
