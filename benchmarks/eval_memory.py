"""Evaluation memory: peak memory of N synthetic 288x288 test maps through common/mapstore.py and the exact AU-PRO.

    python benchmarks/eval_memory.py --counts 1000 10000 [--max_ram_mb 1024]

Each count runs in a fresh process that fills the store batch by batch (as ``main.predict_dataset`` does), then
computes the exact AU-PRO in bounded memory (metrics/pro_stream.py; ``--row``: the whole metric row,
metrics/bounded.py). Reported per count: the bytes the maps and
masks occupy, whether they spilled to a memory-mapped file, the peak anonymous resident memory (RssAnon, sampled
every 20 ms: the process's own memory, what the OOM killer counts), the peak resident set (VmHWM, which also
counts mapped file pages: page cache the kernel writes back and evicts under pressure) and the AU-PRO.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 288


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(count: int, max_ram_mb: float, row: bool = False, batch: int = 8) -> dict:
    import numpy as np

    from common.mapstore import RamBudget, is_spilled
    from metrics.pro_stream import au_pro_bounded

    peak = {"anon": _status_kb("RssAnon")}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["anon"] = max(peak["anon"], _status_kb("RssAnon"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    start_anon = peak["anon"]
    sampler.start()
    budget = RamBudget(max_ram_mb)
    maps = budget.zeros((count, SIZE, SIZE), np.float32)
    masks = budget.zeros((count, SIZE, SIZE), np.uint8)
    rng = np.random.default_rng(0)
    for start in range(0, count, batch):  # as the evaluation loop: one batch of model output at a time
        b = min(batch, count - start)
        gt = np.zeros((b, SIZE, SIZE), np.uint8)
        for i in range(b):
            if (start + i) % 2:
                y, x = rng.integers(0, SIZE - 24, 2)
                gt[i, y:y + 20, x:x + 20] = 1
        maps[start:start + b] = rng.random((b, SIZE, SIZE), np.float32) * 0.8 + 0.3 * gt
        masks[start:start + b] = gt
    filled_anon = peak["anon"]
    if row:  # the whole metric row main.py computes for spilled maps (metrics/bounded.py)
        from metrics.bounded import evaluate_all_bounded

        labels = (np.arange(count) % 2).astype(np.int64)
        scores = np.asarray([float(maps[i].max()) for i in range(count)], np.float32)
        value = evaluate_all_bounded(labels, scores, masks, maps)
    else:
        value = au_pro_bounded(masks, maps)
    done.set()
    sampler.join()
    return {"count": count, "maps_masks_mb": round((maps.nbytes + masks.nbytes) / 2 ** 20, 1),
            "spilled": is_spilled(maps), "baseline_anon_mb": round(start_anon / 1024, 1),
            "peak_anon_after_fill_mb": round(filled_anon / 1024, 1), "peak_anon_mb": round(peak["anon"] / 1024, 1),
            "peak_rss_vmhwm_mb": round(_status_kb("VmHWM") / 1024, 1), ("metric_row" if row else "au_pro"): value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--max_ram_mb", type=float, default=1024)
    parser.add_argument("--row", action="store_true",
                        help="the whole metric row (pixel AUROC/AP, GLASS PRO, AU-PRO), not only the AU-PRO")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT" + json.dumps(worker(args.worker, args.max_ram_mb, args.row)))
        return
    what = "the whole metric row" if args.row else "exact AU-PRO (limit 0.3)"
    print(f"eval_memory: {SIZE}x{SIZE} maps, budget {args.max_ram_mb:g} MB, {what} streamed")
    for count in args.counts:
        started = time.perf_counter()
        command = [sys.executable, __file__, "--worker", str(count), "--max_ram_mb", str(args.max_ram_mb)]
        out = subprocess.run(command + (["--row"] if args.row else []), capture_output=True, text=True,
                             check=True).stdout
        row = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT"))[6:])
        row["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
