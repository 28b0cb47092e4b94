"""Scale-out speed: the 4 demo classes with 1 process vs N torchrun processes, as a ratio of wall times.

    python benchmarks/scale_out.py                      # CPU: 1 process x 2 threads vs 2 processes x 1 thread
    python benchmarks/scale_out.py --nproc 4 --cpus 8   # CPU: 1 x 8 threads vs 4 x 2 threads
    python benchmarks/scale_out.py --gpu 0 --nproc 4    # one GPU: 1 process vs 4 processes sharing it

Both set-ups run the same command (GLASS, EfficientNet-Lite0, demo data generated at --size) into fresh results
folders, alternated over --repeats rounds (A B, then B A, ...); on the CPU with equal thread counts they give
byte-identical ``results.csv`` (the same work, only spread differently). Printed: each wall time and
``speed-up = t(1 process) / t(N processes)``. On a shared machine the figure moves with the other jobs' load:
compare rounds, not single numbers.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.demo import CLASSES, generate_demo  # noqa: E402


def glass_flags(demo, results: Path, args: argparse.Namespace) -> list[str]:
    return ["--method", "glass", "--dataset", "mvtec", "--datapath", str(demo.datapath),
            "--augpath", str(demo.augpath), "--results_path", str(results), "--gpu", str(args.gpu), "--seed", "0",
            "-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3",
            "--pretrain_embed_dimension", "128", "--target_embed_dimension", "128", "--dsc_hidden", "128",
            "--meta_epochs", str(args.epochs), "--step", "5", "--limit", "32", "--resize", str(args.size),
            "--imagesize", str(args.size), "--batch_size", "8", "--num_workers", "0", "--fg", "0",
            "--distribution", "2", "--heatmaps", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    run = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{run.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the torchrun set-up")
    parser.add_argument("--cpus", type=int, default=2, help="CPU threads in all (CPU runs)")
    parser.add_argument("--gpu", type=int, default=-1, help="a CUDA device index: every process shares it")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=96, help="demo image size (>= 64)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the order alternates each round")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scale_out_"))
    try:
        demo = generate_demo(work / "demo", size=args.size, n_train=16, n_test_good=4, n_per_defect=2,
                             classes=CLASSES)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
        per_rank = max(1, args.cpus // args.nproc)
        one = lambda out: ([sys.executable, "main.py", *glass_flags(demo, out, args)],
                           {**env, "OMP_NUM_THREADS": str(args.cpus)})
        many = lambda out: ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc),
                             "--master_port", str(free_port()), "main.py", *glass_flags(demo, out, args),
                             "--threads", str(per_rank)], {**env, "OMP_NUM_THREADS": str(per_rank)})
        label_one = "1 process" + (f" x {args.cpus} threads" if args.gpu < 0 else " on the GPU")
        label_many = f"{args.nproc} processes" + (f" x {per_rank} thread(s)" if args.gpu < 0 else " on one GPU")
        times: dict[str, list[float]] = {label_one: [], label_many: []}
        for round_ in range(args.repeats):
            order = [(label_one, one), (label_many, many)]
            for label, build in (order if round_ % 2 == 0 else order[::-1]):
                out = work / f"results_{len(times[label])}_{label.split()[0]}"
                command, run_env = build(out)
                times[label].append(timed(command, run_env))
                print(f"round {round_ + 1}: {label}: {times[label][-1]:.1f} s", flush=True)
        if args.gpu < 0:
            a = (work / "results_0_1" / "results.csv").read_bytes()
            b = (work / f"results_0_{args.nproc}" / "results.csv").read_bytes()
            print(f"results.csv identical: {a == b}" + ("" if args.cpus == per_rank else
                  " (the thread counts differ, so float sums may round differently)"))
        t_one, t_many = min(times[label_one]), min(times[label_many])
        print(f"{len(CLASSES)} demo classes, {args.epochs} epochs, {args.size} px: {label_one} {t_one:.1f} s, "
              f"{label_many} {t_many:.1f} s; speed-up {t_one / t_many:.2f}x (best of {args.repeats})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
