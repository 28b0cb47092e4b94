"""GLASS speed: one training iteration and inference throughput, this toolkit vs. the reference-order computation.

    python benchmarks/glass_speed.py                 # side by side, with the ratio and the result agreement
    python benchmarks/glass_speed.py --baseline      # only the reference-order computation
    python benchmarks/glass_speed.py --optimised     # only this toolkit's computation

Defaults follow the issue: batch 8, 288 x 288, WideResNet-50-2 with random init (no weights needed), layer2 +
layer3, 1536/1536, step 20. "Reference order" = what the reference code computes, reimplemented here: the whole
backbone up to fc, separate passes for the LAS and the clean images, the unfold -> upsample -> pool embedding, 21
discriminator forwards on cat[true, gaus] with 20 input gradients, scipy Gaussian filtering and Python lists of maps.
The toolkit's training iteration is the steady state of a run: the clean images' embeddings come from the per-run
cache (``--embedding_cache``, filled by the pass that builds the centre), so the backbone runs on the LAS images
only; ``--no_cache`` times the uncached iteration (clean + LAS images through the backbone).
Wall-clock and process CPU time are both printed: on shared cores the CPU time ratio is the steadier figure.
The per-epoch centre (the reference re-runs the backbone over every training image each epoch; here a cached sum)
is reported separately as a cost per training image.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.backbone import load_backbone  # noqa: E402
from glass.embed import embed_reference  # noqa: E402
from glass.gas import GasConfig  # noqa: E402
from glass.inference import scores_and_maps  # noqa: E402
from glass.network import GlassNet  # noqa: E402
from glass.step import losses  # noqa: E402


def full_backbone(backbone, x: torch.Tensor) -> list[torch.Tensor]:
    """The reference's backbone pass: every stage, avgpool and a 1000-way fc run; the hooked layers are returned."""
    outputs = []
    x = backbone.stem(x)
    for index, stage in enumerate(backbone.stages):
        x = stage(x)
        if index in backbone.taps:
            outputs.append(x)
    _ = full_backbone.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
    return [outputs[sorted(backbone.taps).index(t)] for t in backbone.taps]


def make_inputs(args, net):
    gen = torch.Generator().manual_seed(0)
    size, b = args.size, args.batch
    images = torch.randn(b, 3, size, size, generator=gen)
    aug = images.clone()
    aug[:, :, size // 4: size // 2, size // 4: size // 2] = torch.randn(b, 3, size // 4, size // 4, generator=gen)
    grid = size // 8
    mask_s = torch.zeros(b, grid, grid)
    mask_s[:, grid // 4: grid // 2, grid // 4: grid // 2] = 1
    centre = torch.randn(grid * grid, args.dim, generator=gen) * 0.05
    noise = torch.randn(b * grid * grid, args.dim, generator=gen) * 0.015
    return images, aug, mask_s, centre, noise


def train_iteration(net, inputs, args, reference: bool, clean_cache: torch.Tensor | None = None) -> dict:
    images, aug, mask_s, centre, noise = inputs
    proj, disc = net.projection, net.discriminator
    proj.train()
    disc.train()
    proj.zero_grad()
    disc.zero_grad()
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        if reference:
            fake_emb = embed_reference(full_backbone(net.backbone, aug), args.dim, args.dim, 3)
            true_emb = embed_reference(full_backbone(net.backbone, images), args.dim, args.dim, 3)
        elif clean_cache is not None:  # steady state: the clean embeddings come from the per-run cache
            true_emb, fake_emb = clean_cache, net.embed(aug)[0]
        else:
            emb, _ = net.embed(torch.cat([images, aug]))
            true_emb, fake_emb = emb[: len(emb) // 2], emb[len(emb) // 2:]
    cfg = GasConfig(step=args.step, radius=0.75, mining=1, svd=args.svd)
    out = losses(proj, disc, true_emb, fake_emb, mask_s, centre.repeat(images.shape[0], 1), noise, cfg, p=0.5,
                 fast=not reference)
    out.loss.backward()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    grads = {f"P.{k}": p.grad.clone() for k, p in proj.named_parameters()}
    grads.update({f"D.{k}": p.grad.clone() for k, p in disc.named_parameters()})
    return {"seconds": seconds, "cpu": cpu, "loss": float(out.loss.detach()), "r_t": float(out.r_t), "r_g": float(out.r_g),
            "grads": grads}


def inference(net, images, args, reference: bool) -> dict:
    net.eval()
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        if reference:
            from scipy.ndimage import gaussian_filter

            emb = embed_reference(full_backbone(net.backbone, images), args.dim, args.dim, 3)
            patch = net.discriminator(net.projection(emb)).reshape(images.shape[0], args.size // 8, args.size // 8)
            scores = patch.flatten(1).max(1).values.tolist()
            up = F.interpolate(patch[:, None], size=(args.size, args.size), mode="bilinear", align_corners=False)
            maps = [gaussian_filter(m.numpy(), sigma=4).tolist() for m in up[:, 0]]  # the reference keeps lists
            scores, maps = np.asarray(scores, np.float32), np.asarray(maps, np.float32)
        else:
            patch, grid = net.patch_scores(images)
            s, m = scores_and_maps(patch, images.shape[0], grid, (args.size, args.size))
            scores, maps = s.numpy(), m.numpy()
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "scores": scores,
            "maps": maps}


def centre_cost(net, images, args, reference: bool) -> float:
    """Seconds per training image of the per-epoch centre."""
    started = time.perf_counter()
    with torch.no_grad():
        if reference:
            emb = embed_reference(full_backbone(net.backbone, images), args.dim, args.dim, 3)
            net.projection(emb)
            return (time.perf_counter() - started) / images.shape[0]
    # cached sum: per epoch only the (dim x dim) projection of one mean and < batch images of the short last batch
    net.projection(torch.zeros(args.size // 8 * args.size // 8, args.dim))
    return (time.perf_counter() - started) / 400  # amortised over a 392-image epoch (limit), excluding the r < B pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--baseline", action="store_true", help="only the reference-order computation")
    mode.add_argument("--optimised", action="store_true", help="only this toolkit's computation")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--svd", type=int, default=0, choices=(0, 1))
    parser.add_argument("--backbone", default="wideresnet50")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no_cache", action="store_true",
                        help="toolkit iteration without the clean-embedding cache (both images through the backbone)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved timed repetitions (the minimum is reported)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = load_backbone(args.backbone, ["layer2", "layer3"], "random")
    net = GlassNet(backbone, args.dim, args.dim, 3, 1, 2, args.hidden)
    full_backbone.fc = torch.nn.Linear(
        [m for m in backbone.stages[-1].modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels, 1000)
    inputs = make_inputs(args, net)
    print(f"GLASS speed: batch {args.batch}, {args.size}x{args.size}, {args.backbone} (random init), dim {args.dim}, "
          f"step {args.step}, {'hypersphere' if args.svd else 'manifold'}, torch threads {torch.get_num_threads()}")
    print("  toolkit training iteration: " + ("no embedding cache (clean + LAS images through the backbone)"
                                             if args.no_cache else "steady state, clean-image embeddings from the "
                                             "per-run cache (the backbone runs on the 8 LAS images only)"))
    # the toolkit's training caches the clean images' embeddings in the pass that builds the centre (once per run,
    # --embedding_cache); an iteration then embeds the LAS images only. --no_cache times the uncached iteration.
    with torch.no_grad():
        clean_cache = None if args.no_cache else net.embed(inputs[0])[0]
    runs = [("reference order", True), ("toolkit", False)]
    if args.baseline:
        runs = runs[:1]
    elif args.optimised:
        runs = runs[1:]
    best: dict[str, list] = {label: [None, None] for label, _ in runs}
    for _ in range(args.repeats):  # interleaved, minimum kept: other jobs on shared cores add noise
        for label, reference in runs:
            model = copy.deepcopy(net)
            train = train_iteration(model, inputs, args, reference, None if reference else clean_cache)
            infer = inference(model, inputs[0], args, reference)
            slot = best[label]
            slot[0] = train if slot[0] is None or train["seconds"] < slot[0]["seconds"] else slot[0]
            slot[1] = infer if slot[1] is None or infer["seconds"] < slot[1]["seconds"] else slot[1]
    results = {}
    for label, reference in runs:
        best_train, best_infer = best[label]
        centre = centre_cost(copy.deepcopy(net), inputs[0], args, reference)
        results[label] = (best_train, best_infer)
        print(f"  {label:16s} training iteration {best_train['seconds']:7.2f} s (cpu {best_train['cpu']:.1f} s)   "
              f"inference {args.batch / best_infer['seconds']:6.2f} img/s ({best_infer['seconds'] / args.batch:.3f} "
              f"s/img, cpu {best_infer['cpu'] / args.batch:.3f})   "
              f"centre {centre:.4f} s per training image per epoch   loss {best_train['loss']:.6f}")
    if len(results) == 2:
        (rt, ri), (ot, oi) = results["reference order"], results["toolkit"]
        grad_diff = max(float((rt["grads"][k] - ot["grads"][k]).abs().max()) for k in rt["grads"])
        print(f"  speed-up (wall): training iteration x{rt['seconds'] / ot['seconds']:.2f}, inference "
              f"x{ri['seconds'] / oi['seconds']:.2f};  (process cpu time): x{rt['cpu'] / ot['cpu']:.2f}, "
              f"x{ri['cpu'] / oi['cpu']:.2f}")
        print(f"  agreement: |loss| {abs(rt['loss'] - ot['loss']):.2e}, |r_g| {abs(rt['r_g'] - ot['r_g']):.2e}, "
              f"max |grad| {grad_diff:.2e}, max |score| {np.abs(ri['scores'] - oi['scores']).max():.2e}, "
              f"max |map| {np.abs(ri['maps'] - oi['maps']).max():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
