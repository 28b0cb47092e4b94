"""Which epoch to keep without test labels: the test metrics of test-selected vs last vs val-selected models.

    python benchmarks/selection_rules.py --data loco --method glass            # generated LOCO tree, seeds 0 1 2
    python benchmarks/selection_rules.py --data loco --method slsg --jobs 2
    python benchmarks/selection_rules.py --data demo --method glass            # the demo's four line classes
    python benchmarks/selection_rules.py --data loco -- --meta_epochs 40       # extra main.py flags after --

Per training seed two runs of ``main.py`` on the same data (generated once under ``--out``): ``--select test``
(the reference rule; its ``image_auroc ...`` columns are the test-selected model, its ``last_*`` columns the final
epoch of the same training) and ``--select val`` (held-out good images, or the dataset's own ``validation/good``,
plus the method's own synthetic anomalies; no test label read). Printed: per rule the mean over classes, then mean
+- sample std over seeds, of image AUROC, pixel AUROC and AU-PRO on the test set (LOCO: also image AUROC on logical and
structural anomalies where ``results.csv`` has them), and a line per seed. Finished runs (``<run>.done``) are
reused and a killed run resumes, so an interrupted measurement continues. With ``--jobs N`` runs go side by side,
one thread each. The runs are seeded: on the CPU the figures repeat exactly for the same thread count.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.demo import generate_demo, generate_loco_demo  # noqa: E402

# the shell/run-demo.sh GLASS settings (EfficientNet-Lite0 with its offline ImageNet weights, 128 px, 24 epochs)
GLASS = ["-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3", "--pretrain_embed_dimension", "256",
         "--target_embed_dimension", "256", "--dsc_hidden", "256", "--meta_epochs", "24", "--eval_epochs", "1",
         "--step", "20", "--lr", "0.001", "--distribution", "2", "--resize", "128", "--imagesize", "128",
         "--batch_size", "8"]
# SLSG on 2 CPU cores: 128 px, 200 steps of batch 1, evaluated every 40 steps; random encoder (no resnet18 offline)
SLSG = ["--imagesize", "128", "--steps", "200", "--batch_size", "1", "--lr", "0.04", "--eval_every", "40",
        "--save_every", "40", "--pretrain", "none"]
DATA_FLAGS = {  # (method, data) -> flags for that data: LOCO images are 320 x 192, so GLASS keeps their aspect
    ("glass", "demo"): ["--fg", "1"], ("glass", "loco"): ["--fg", "0", "--keep_aspect", "1"],
    ("slsg", "demo"): [], ("slsg", "loco"): [],
}
RULES = ("test", "last", "val")
METRICS = ("image_auroc", "pixel_auroc", "au_pro", "image_auroc_logical", "image_auroc_structural")


def make_data(data: str, folder: Path, size: int | None):
    """The dataset (generated once, re-used when complete) and main.py's --dataset for it."""
    if data == "loco":  # more images than the test tree: 30 train, 8 validation, 12 good, 12 logical, 12 structural
        return generate_loco_demo(folder, size=size or 320, n_train=30, n_validation=8, n_test_good=12,
                                  n_per_type=12), "loco"
    return generate_demo(folder, size=size or 128, variant="line"), "mvtec"


def threads_for(jobs: int) -> int:
    """Threads per run: one each when runs go side by side, else every CPU."""
    return 1 if jobs > 1 else max(1, os.cpu_count() or 1)


def run_once(command: list[str], results: Path, threads: int) -> Path:
    csv_path, finished = results / "results.csv", results.with_suffix(".done")
    if finished.is_file():  # results.csv alone may hold the first classes of a killed run: that one resumes
        return csv_path
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(results.with_suffix(".log"), "w") as log:
        code = subprocess.run([*command, "--threads", str(threads)], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(command)}\nsee {results.with_suffix('.log')}")
    finished.write_text("")
    return csv_path


def class_rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["Row Names"] != "Mean"]


def rule_values(rows: list[dict], rule: str) -> dict[str, float]:
    """Mean over classes of each metric the rule's model has (``last``: the ``last_*`` columns of a test run)."""
    out = {}
    for metric in METRICS:
        column = f"last_{metric}" if rule == "last" else metric
        values = [float(row[column]) for row in rows if row.get(column) not in (None, "")]
        if len(values) == len(rows):
            out[metric] = float(np.mean(values))
    return out


def summarise(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """rule -> metric -> (mean, sample std over seeds, 0 for one seed); ``per_seed``: seed -> rule -> metric ->
    class mean."""
    summary = {}
    for rule in RULES:
        metrics = set.intersection(*(set(per_seed[s][rule]) for s in per_seed))
        summary[rule] = {}
        for m in METRICS:
            if m in metrics:
                values = [per_seed[s][rule][m] for s in per_seed]
                spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                summary[rule][m] = (float(np.mean(values)), spread)
    return summary


def table(summary, per_seed, selected_by: str) -> str:
    shown = [m for m in METRICS if any(m in summary[r] for r in RULES)]
    lines = ["| kept epoch | " + " | ".join(shown) + " | image AUROC per seed |",
             "|---|" + "---|" * (len(shown) + 1)]
    names = {"test": "`test` (best on test, optimistic)", "last": "`last`", "val": f"`{selected_by}`"}
    for rule in RULES:
        cells = [f"{summary[rule][m][0]:.3f} ± {summary[rule][m][1]:.3f}" if m in summary[rule] else "–"
                 for m in shown]
        seeds = " / ".join(f"{per_seed[s][rule]['image_auroc']:.3f}" for s in sorted(per_seed))
        lines.append(f"| {names[rule]} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("loco", "demo"), default="loco")
    parser.add_argument("--method", choices=("glass", "slsg"), default="glass")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (each with --threads 1)")
    parser.add_argument("--size", type=int, default=None, help="generated image width (demo 128, LOCO 320)")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "selection_rules")
    parser.add_argument("--classes", nargs="+", default=None, help="a subset of the classes")
    args = parser.parse_args(own)
    data, dataset = make_data(args.data, args.out / f"data_{args.data}", args.size)
    runs = args.out / f"{args.method}_{args.data}"
    runs.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "main.py", "--method", args.method, "--test", "ckpt", "--dataset", dataset,
            "--datapath", str(data.datapath), "--augpath", str(data.augpath), "--gpu", "-1", "--num_workers", "0",
            "--heatmaps", "0", "--tensorboard", "0",
            *[flag for cls in args.classes or data.classes for flag in ("--classes", cls)],
            *(GLASS if args.method == "glass" else SLSG), *DATA_FLAGS[(args.method, args.data)], *extra]
    jobs = {(select, seed): [*base, "--seed", str(seed), "--select", select,
                             "--results_path", str(runs / f"{select}_s{seed}")]
            for seed in args.seeds for select in ("test", "val")}
    threads = threads_for(args.jobs)
    print(f"{len(jobs)} runs ({args.method} on {args.data}: {', '.join(args.classes or data.classes)}) into {runs}, "
          f"{args.jobs} at a time, {threads} thread(s) each", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = {key: pool.submit(run_once, cmd, Path(cmd[-1]), threads) for key, cmd in jobs.items()}
        paths = {key: future.result() for key, future in done.items()}
    per_seed = {}
    for seed in args.seeds:
        test_rows, val_rows = class_rows(paths[("test", seed)]), class_rows(paths[("val", seed)])
        per_seed[seed] = {"test": rule_values(test_rows, "test"), "last": rule_values(test_rows, "last"),
                          "val": rule_values(val_rows, "val")}
        selected_by = val_rows[0]["selected_by"]
        print(f"seed {seed}: " + ", ".join(f"{rule} {per_seed[seed][rule]['image_auroc']:.3f}" for rule in RULES)
              + " image AUROC (class mean)")
    summary = summarise(per_seed)
    print(f"\n{args.method} on {args.data}, mean over classes, then mean ± std over seeds {args.seeds}:\n")
    print(table(summary, per_seed, selected_by))
    (runs / "summary.json").write_text(json.dumps({"per_seed": per_seed, "summary": summary, "extra": extra},
                                                  indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
