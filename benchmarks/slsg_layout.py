"""Why channels-last and NCHW SLSG training steps differ: one forward + backward in float64 and float32, both
layouts, counting graph nodes whose kNN neighbour set changes, then again with the neighbour sets forced equal.

    python benchmarks/slsg_layout.py [--imagesize 128] [--batch_size 4] [--threads 2]

Prints |loss diff|, nodes with another neighbour set, max |logit diff| and the relative gradient difference for each
comparison (docs/slsg.md, Speed). Same weights and batch as benchmarks/slsg_speed.py.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slsg.graph as graph  # noqa: E402
from slsg.batches import make_batch  # noqa: E402
from slsg.loss import slsg_loss  # noqa: E402
from slsg.network import SLSGNet  # noqa: E402
from slsg.simulate import SLSGSimulator  # noqa: E402
from slsg_speed import _images  # noqa: E402


def _run(base: SLSGNet, x: torch.Tensor, target: torch.Tensor, dtype: torch.dtype, fmt: torch.memory_format,
         force: torch.Tensor | None = None) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (loss, neighbour indices (B,N,k) the layout itself chose, gradients (P,) float64, logits float64)."""
    model = copy.deepcopy(base).to(dtype).to(memory_format=fmt).train()
    original = graph._KnnGraph.neighbours
    seen = {}

    def neighbours(self, q, relative_pos):
        seen["idx"] = original(self, q, relative_pos)
        return force if force is not None else seen["idx"]

    graph._KnnGraph.neighbours = neighbours
    try:
        seg, aux = model(x.to(dtype).contiguous(memory_format=fmt))
        loss = slsg_loss(seg, aux, target.to(dtype))
        loss.backward()
    finally:
        graph._KnnGraph.neighbours = original
    grads = torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])
    return float(loss.detach()), seen["idx"], grads, seg.detach().double()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagesize", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.imagesize
    images = _images(size)
    torch.manual_seed(0)
    base = SLSGNet(grid=size // 16)
    x, target = make_batch(images, SLSGSimulator("pushpins", None, images), args.batch_size, 0, 0)
    nchw, last = torch.contiguous_format, torch.channels_last
    r64a, r64b = _run(base, x, target, torch.float64, nchw), _run(base, x, target, torch.float64, last)
    r32a, r32b = _run(base, x, target, torch.float32, nchw), _run(base, x, target, torch.float32, last)
    f32a = _run(base, x, target, torch.float32, nchw, force=r64a[1])
    f32b = _run(base, x, target, torch.float32, last, force=r64a[1])
    print(f"{size}x{size}, {args.batch_size}+{args.batch_size} images, {torch.get_num_threads()} threads; "
          f"float64 loss {r64a[0]:.8f}")
    for name, a, b in (("float64 NCHW vs float64 channels-last", r64a, r64b), ("float32 NCHW vs float64", r32a, r64a),
                       ("float32 channels-last vs float64", r32b, r64a),
                       ("float32 NCHW vs float32 channels-last", r32a, r32b),
                       ("neighbours forced equal: f32 NCHW vs CL", f32a, f32b)):
        flips = int((a[1] != b[1]).any(-1).sum())
        print(f"{name:40s} |dloss| {abs(a[0] - b[0]):.2e}  nodes with other neighbours {flips}/"
              f"{a[1].shape[0] * a[1].shape[1]}  max|dlogits| {float((a[3] - b[3]).abs().max()):.2e}  "
              f"rel|dgrad| {float((a[2] - b[2]).norm() / b[2].norm()):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
