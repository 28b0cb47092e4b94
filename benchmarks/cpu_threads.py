"""Intra-op threads on a shared CPU: 2 threads vs 1 vs 2 with OMP_WAIT_POLICY=PASSIVE, quiet and contended.

    python benchmarks/cpu_threads.py [--reps 3] [--iters 20]

Each measurement is a fresh process (the wait policy is read once, when OpenMP starts) timing ``--iters`` training
iterations of a small GLASS-like step (a conv stack forward on 8 images, then a 1536 -> 1024 discriminator-sized
linear forward/backward over the patch rows). "contended" runs one busy process beside it (another job on the same
cores). Configurations are alternated within every repetition; the report gives each configuration's median time as
a ratio to "2 threads, default policy" in the same condition (> 1 = faster), and contended / quiet per configuration.
No absolute times are reported: only ratios of things timed in the same run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {  # name: environment
    "2 threads": {"OMP_NUM_THREADS": "2"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads+PASSIVE": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}
BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def worker(iters: int) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    convs = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                          nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU()).eval()
    disc = nn.Sequential(nn.Linear(1536, 1024), nn.BatchNorm1d(1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1))
    opt = torch.optim.AdamW(disc.parameters(), 2e-4)
    images = torch.randn(8, 3, 96, 96)
    rows = torch.randn(8 * 24 * 24, 1536)

    def step() -> None:
        with torch.no_grad():
            convs(images)
        opt.zero_grad()
        torch.sigmoid(disc(rows)).mean().backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    print(f"SECONDS {time.perf_counter() - start:.6f}")


def _measure(config: str, iters: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env.update(CONFIGS[config])
    out = subprocess.run([sys.executable, __file__, "--worker", "--iters", str(iters)], env=env, text=True,
                         capture_output=True, check=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("SECONDS")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.iters)
        return
    names = list(CONFIGS)
    times: dict[tuple[str, str], list[float]] = {(c, n): [] for c in ("quiet", "contended") for n in names}
    for rep in range(args.reps):
        for condition in (("quiet", "contended") if rep % 2 == 0 else ("contended", "quiet")):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if condition == "contended" else None
            try:
                order = names[rep % len(names):] + names[:rep % len(names)]  # rotate the order every repetition
                for name in order:
                    times[(condition, name)].append(_measure(name, args.iters))
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    print(f"cpu_threads: {args.reps} repetitions x {args.iters} iterations, CPUs usable: "
          f"{len(os.sched_getaffinity(0))}, contended = one busy process beside it")
    print("speed relative to '2 threads' (default wait policy) in the same condition; > 1 = faster")
    median = {key: statistics.median(value) for key, value in times.items()}
    print(f"{'configuration':<20}{'quiet':>10}{'contended':>12}{'quiet/contended time':>24}")
    for name in names:
        quiet = median[("quiet", "2 threads")] / median[("quiet", name)]
        contended = median[("contended", "2 threads")] / median[("contended", name)]
        slowdown = median[("contended", name)] / median[("quiet", name)]
        print(f"{name:<20}{quiet:>10.2f}{contended:>12.2f}{slowdown:>24.2f}")


if __name__ == "__main__":
    main()
