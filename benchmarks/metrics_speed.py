"""Time the toolkit's exact AU-PRO against a straightforward implementation of the official MVTec algorithm.

    python benchmarks/metrics_speed.py [--images 150] [--size 288] [--repeats 3] [--threads 1] [--glass 12]

Data: synthetic GLASS-like maps (coarse patch scores, bilinear upsampling, Gaussian blur) with MVTec-like regions
(ellipses, scratches, small boxes), a third of the images defect-free. Prints both values (they must agree), the
time ratio and the peak memory (tracemalloc, numpy allocations) of each. With a CUDA GPU it also times
``device="cuda"``. ``--glass N`` also times the GLASS-repo PRO on N maps against a per-threshold reference loop.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=150)
    p.add_argument("--size", type=int, default=288)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=float, default=0.3)
    p.add_argument("--glass", type=int, default=0, help="also time the GLASS-repo PRO on this many maps")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    _set_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    import cv2
    import numpy as np

    import metrics

    cv2.setNumThreads(args.threads)
    masks, maps = make_data(args.images, args.size, np.random.default_rng(args.seed))
    print(f"data: {args.images} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f} M pixels), "
          f"{int((masks.reshape(len(masks), -1).any(1)).sum())} anomalous images, "
          f"{masks.mean() * 100:.1f}% anomalous pixels, {args.threads} thread(s)")

    base_value, base_time, base_peak = measure(lambda: official_au_pro(masks, maps, args.limit), args.repeats)
    ours_value, ours_time, ours_peak = measure(lambda: metrics.au_pro(masks, maps, args.limit), args.repeats)
    print(f"official algorithm  AU-PRO@{args.limit} = {base_value:.12f}  {base_time:7.3f} s  peak {base_peak:7.1f} MB")
    print(f"toolkit (numpy)     AU-PRO@{args.limit} = {ours_value:.12f}  {ours_time:7.3f} s  peak {ours_peak:7.1f} MB")
    print(f"|difference| = {abs(base_value - ours_value):.2e}; speed-up {base_time / ours_time:.1f}x; "
          f"peak memory ratio {base_peak / max(ours_peak, 1e-9):.1f}x")

    labels = masks.reshape(len(masks), -1).any(1).astype(np.uint8)
    scores = maps.reshape(len(maps), -1).max(1)
    _, all_time, all_peak = measure(lambda: metrics.evaluate_all(labels, scores, masks, maps), 1)
    print(f"toolkit evaluate_all (image/pixel AUROC+AP, GLASS-repo PRO, AU-PRO): {all_time:.3f} s, "
          f"peak {all_peak:.1f} MB")

    import torch

    if torch.cuda.is_available():
        metrics.au_pro(masks, maps, args.limit, device="cuda")  # warm-up
        torch.cuda.reset_peak_memory_stats()
        gpu_value, gpu_time, _ = measure(lambda: metrics.au_pro(masks, maps, args.limit, device="cuda"), args.repeats)
        print(f"toolkit (cuda)      AU-PRO@{args.limit} = {gpu_value:.12f}  {gpu_time:7.3f} s  "
              f"GPU peak {torch.cuda.max_memory_allocated() / 2**20:.1f} MB; speed-up {base_time / gpu_time:.1f}x")
    else:
        print("no CUDA device: GPU path not timed")

    if args.glass:
        m, a = masks[:args.glass].astype(np.float64), maps[:args.glass]
        ref_value, ref_time, _ = measure(lambda: reference_glass_pro(m, a), 1)
        tk_value, tk_time, _ = measure(lambda: metrics.glass_pro(m, a), args.repeats)
        print(f"GLASS-repo PRO on {args.glass} maps: reference loop {ref_value:.12f} {ref_time:.3f} s, toolkit "
              f"{tk_value:.12f} {tk_time:.3f} s; |difference| {abs(ref_value - tk_value):.2e}; "
              f"speed-up {ref_time / tk_time:.1f}x")


def measure(fn, repeats: int):
    """(value, best wall time over repeats, peak traced memory in MB of one call)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, best, peak / 2**20


def make_data(n: int, size: int, rng):
    """(masks (n, size, size) bool, maps (n, size, size) float32): MVTec-like regions, GLASS-like smooth maps."""
    import cv2
    import numpy as np
    from scipy.ndimage import gaussian_filter

    masks = np.zeros((n, size, size), np.uint8)
    maps = np.empty((n, size, size), np.float32)
    for i in range(n):
        if i % 3:
            for _ in range(rng.integers(1, 4)):
                kind = rng.integers(0, 3)
                cx, cy = (int(v) for v in rng.integers(size // 8, size - size // 8, 2))
                if kind == 0:
                    axes = (int(rng.integers(4, size // 6)), int(rng.integers(4, size // 6)))
                    cv2.ellipse(masks[i], (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
                elif kind == 1:
                    end = (int(cx + rng.integers(-size // 4, size // 4)), int(cy + rng.integers(-size // 4, size // 4)))
                    cv2.line(masks[i], (cx, cy), end, 1, int(rng.integers(1, 4)))
                else:
                    h, w = (int(v) for v in rng.integers(2, 10, 2))
                    masks[i, cy:cy + h, cx:cx + w] = 1
        patches = rng.normal(0.0, 1.0, (size // 8, size // 8)).astype(np.float32)
        signal = cv2.resize(masks[i].astype(np.float32), (size // 8, size // 8), interpolation=cv2.INTER_AREA)
        coarse = patches + 3.0 * signal
        up = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)
        maps[i] = 1.0 / (1.0 + np.exp(-gaussian_filter(up, 4)))
    return masks.astype(bool), maps


def official_au_pro(masks, maps, limit: float) -> float:
    """The official MVTec AD algorithm, written plainly (reference page, section 3): per-pixel float64 weights,
    one stable argsort of all scores, cumulative sums, last index of each tie run, trapezoid cut at the limit."""
    import numpy as np
    from scipy import ndimage

    fp_w, pro_w, n_regions = np.zeros(maps.shape), np.zeros(maps.shape), 0
    for i, g in enumerate(masks):
        lab, n = ndimage.label(g, structure=np.ones((3, 3)))
        fp_w[i] = lab == 0
        if n:
            inv = 1.0 / np.bincount(lab.ravel())
            inv[0] = 0.0
            pro_w[i] = inv[lab]
        n_regions += n
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    s = maps.ravel()[order]
    fpr = np.cumsum(fp_w.ravel()[order]) / fp_w.sum()
    pro = np.cumsum(pro_w.ravel()[order]) / n_regions
    last = np.r_[s[1:] != s[:-1], True]
    x = np.r_[0.0, np.minimum(fpr[last], 1), 1.0]
    y = np.r_[0.0, np.minimum(pro[last], 1), 1.0]
    k = np.searchsorted(x, limit, side="right")
    xs, ys = x[:k], y[:k]
    if xs[-1] < limit:
        t = (limit - x[k - 1]) / (x[k] - x[k - 1])
        xs, ys = np.r_[xs, limit], np.r_[ys, y[k - 1] + t * (y[k] - y[k - 1])]
    return float(np.trapezoid(ys, xs) / limit)


def reference_glass_pro(masks, maps) -> float:
    """The GLASS repository's algorithm written plainly: every threshold, every image: dilate, label, overlap."""
    import cv2
    import numpy as np
    from skimage import measure

    kernel = np.ones((5, 5), np.uint8)
    low, high = maps.min(), maps.max()
    delta = np.float64(high - low) / 200
    count = int(np.ceil(np.float64(high - low) / delta))
    start = np.float64(low)
    thresholds = start + np.arange(count) * ((start + delta) - start)
    rows = []
    for th in thresholds:
        binary = maps > np.float32(th)
        pros = []
        for b, mask in zip(binary, masks):
            dilated = cv2.dilate(b.astype(np.uint8), kernel)
            for region in measure.regionprops(measure.label(mask.astype(int))):
                pros.append(dilated[region.coords[:, 0], region.coords[:, 1]].sum() / region.area)
        inverse = 1 - masks
        rows.append((np.mean(pros), np.logical_and(inverse, binary).sum() / inverse.sum()))
    pro, fpr = np.array(rows).T
    keep = fpr < 0.3
    pro, fpr = pro[keep], fpr[keep]
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min() + 1e-10)
    return float(-np.trapezoid(pro, fpr))


if __name__ == "__main__":
    main()
