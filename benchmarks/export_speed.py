"""Exported models vs PyTorch eager on this CPU: batch-1 latency and batch-8 throughput, and their parity.

    python benchmarks/export_speed.py                       # all three models, 1 thread, 5 repeats
    python benchmarks/export_speed.py --threads 2 --repeats 3 --cases glass-demo

Models (random weights: speed and parity do not depend on training): GLASS with WideResNet-50-2 at 288 px
(layer2 + layer3, 1024/1024, the reference settings), GLASS with the demo backbone (EfficientNet-Lite0 at 128 px,
256/256, as shell/run-demo.sh) and SLSG at 256 px. Every runner gets the same uint8 NHWC batch; eager PyTorch
includes the same normalisation the exported graph does. Calls alternate between runners within each repeat, and
the medians are compared, so a load change on a shared machine hits all runners alike. Only ratios are printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.cli import parse as parse_flags  # noqa: E402
from runner.deploy.export import TIE_GAP, export_method, slsg_tie_gaps, torch_predict  # noqa: E402
from runner.deploy.infer import ExportedModel  # noqa: E402

CASES = {
    "glass-wrn50-288": ("glass", ["--backbone_weights", "random", "--imagesize", "288", "--resize", "288"]),
    "glass-demo-128": ("glass", ["-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3",
                                 "--pretrain_embed_dimension", "256", "--target_embed_dimension", "256",
                                 "--dsc_hidden", "256", "--imagesize", "128", "--resize", "128"]),
    "slsg-256": ("slsg", ["--imagesize", "256"]),
}


def build(case: str):
    name, flags = CASES[case]
    from runner.registry import method_class

    config = parse_flags(["--method", name, *flags]).config
    method = method_class(name).build(config, torch.device("cpu"), "bench")
    getattr(method, "model", getattr(method, "net", None)).eval()
    return method, method.preprocessing(train=False)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run_case(case: str, repeats: int, threads: int, folder: Path) -> None:
    torch.manual_seed(0)
    method, pre = build(case)
    height, width = pre.output_shape
    runners = {"eager": None}
    for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".xml")):
        path = export_method(method, pre, folder / f"{case}{suffix}", fmt, threshold=0.5, verify=False)["path"]
        runners["onnxruntime" if fmt == "onnx" else "openvino"] = ExportedModel(path, threads=threads)
    rng = np.random.default_rng(0)
    batches = {b: rng.integers(0, 256, (b, height, width, 3), dtype=np.uint8) for b in (1, 8)}

    def call(runner, batch):
        images = batches[batch]
        return (lambda: torch_predict(method, pre, images)) if runner is None else (lambda: runner.run(images))

    for runner in runners.values():  # warm-up: first-call allocations and kernel selection
        for batch in batches:
            call(runner, batch)()
    times = {(name, b): [] for name in runners for b in batches}
    for _ in range(repeats):
        for batch in batches:
            for name, runner in runners.items():
                times[(name, batch)].append(timed(call(runner, batch)))
    median = {key: statistics.median(values) for key, values in times.items()}
    want_scores, want_maps = torch_predict(method, pre, batches[8])
    print(f"\n{case} ({height}x{width}, {threads} thread(s), {repeats} alternated repeats, medians)")
    for name in ("onnxruntime", "openvino"):
        scores, maps, _ = runners[name].run(batches[8])
        b1 = median[("eager", 1)] / median[(name, 1)]
        b8 = median[("eager", 8)] / median[(name, 8)]
        print(f"  {name:<12} batch-1 latency {b1:5.2f}x faster than eager; batch-8 throughput {b8:5.2f}x eager; "
              f"parity (batch 8): max |score| {np.abs(scores - want_scores).max():.1e}, "
              f"max |map| {np.abs(maps - want_maps).max():.1e}")
    if method.name == "slsg":
        sensitive = int((slsg_tie_gaps(method, pre, batches[8]) < TIE_GAP).sum())
        print(f"  (SLSG: {sensitive}/8 images have a graph neighbour within {TIE_GAP:g} of a tie; such an image "
              f"may differ by more than rounding in any runtime)")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="threads of every runner (torch, ORT, OpenVINO)")
    return parser.parse_args()


def run() -> int:
    args = parse()
    torch.set_num_threads(args.threads)
    print(f"threads: {args.threads} for torch ({torch.get_num_threads()}), onnxruntime and OpenVINO; "
          f"speed-ups are eager time / exported time")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            run_case(case, args.repeats, args.threads, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(run())
