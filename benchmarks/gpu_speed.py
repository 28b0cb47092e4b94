"""GPU speed (issue 13): the reference-order computation vs this toolkit, fp32 and bf16, on one device.

    python benchmarks/gpu_speed.py                          # CUDA, the issue's setting (WideResNet-50, 288 px, ...)
    python benchmarks/gpu_speed.py --device cpu --quick     # a smoke run of the same code on the CPU (tiny sizes)
    python benchmarks/gpu_speed.py --json out.json          # also write the figures as JSON

GLASS setting (issue 13): WideResNet-50-2 (random init: no download) to layer3 (layer2 + layer3), 288 x 288,
1536/1536 dimensions, discriminator hidden 1024, batch 8, 20 ascent steps. Reported:

* training iteration (forward, backward, both optimiser steps; steady state): "reference order" = the whole
  backbone to fc on the clean and LAS images, unfold -> upsample -> pool embedding, 21 discriminator forwards with
  20 input gradients and host synchronisations as the reference code has them; "toolkit" = the clean embeddings
  from the per-run cache, the backbone on the LAS images only, the fast GAS, no per-step synchronisation
  (glass/step.py), channels-last, cuDNN autotuning; the toolkit again with ``--precision bf16``;
* inference images/s at batch 1, 8 and 64, map post-processing (upsampling, Gaussian filter) and the copy of the
  scores and maps to the host included; the reference order keeps its CPU scipy filter and Python lists;
* peak GPU memory of each phase, and the agreement of losses, gradients, scores and maps (toolkit vs reference
  order in fp32; bf16 vs fp32 toolkit);
* SLSG training step and inference (benchmarks/slsg_speed.py on the same device).

Times are the median of ``--repeats`` timed runs after warm-up, with the device synchronised around each.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import precision  # noqa: E402
from common.backbone import load_backbone  # noqa: E402
from glass.embed import embed_reference  # noqa: E402
from glass.gas import GasConfig  # noqa: E402
from glass.inference import scores_and_maps  # noqa: E402
from glass.network import GlassNet  # noqa: E402
from glass.step import losses  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int, warmup: int = 2) -> tuple[float, object, float]:
    """(median seconds, last result, peak device memory in MiB over the timed runs)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, result = [], None
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")
    return statistics.median(times), result, peak


class ReferenceBackbone:
    """The reference's backbone pass: every stage, then avgpool and a 1000-way fc; the hooked layers returned."""

    def __init__(self, backbone, device: torch.device) -> None:
        self.backbone = backbone
        width = [m for m in backbone.stages[-1].modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels
        self.fc = torch.nn.Linear(width, 1000).to(device)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        x = self.backbone.stem(x)
        for index, stage in enumerate(self.backbone.stages):
            x = stage(x)
            if index in self.backbone.taps:
                outputs.append(x)
        self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return [outputs[sorted(self.backbone.taps).index(t)] for t in self.backbone.taps]


def make_inputs(args, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    size, b, stride = args.size, args.batch, 8
    images = torch.randn(b, 3, size, size, generator=gen)
    aug = images.clone()
    aug[:, :, size // 4: size // 2, size // 4: size // 2] = torch.randn(b, 3, size // 4, size // 4, generator=gen)
    grid = size // stride
    mask_s = torch.zeros(b, grid, grid)
    mask_s[:, grid // 4: grid // 2, grid // 4: grid // 2] = 1
    centre = torch.randn(grid * grid, args.dim, generator=gen) * 0.05
    noise = torch.randn(b * grid * grid, args.dim, generator=gen) * 0.015
    return [t.to(device) for t in (images, aug, mask_s, centre, noise)]


def train_iteration(net, ref_backbone, inputs, args, reference: bool, clean_cache=None) -> dict:
    images, aug, mask_s, centre, noise = inputs
    proj, disc = net.projection, net.discriminator
    proj.train()
    disc.train()
    opt_p, opt_d = net._opts
    opt_p.zero_grad()
    opt_d.zero_grad()
    with torch.no_grad():
        if reference:
            fake_emb = embed_reference(ref_backbone(aug), args.dim, args.dim, 3)
            true_emb = embed_reference(ref_backbone(images), args.dim, args.dim, 3)
        else:
            true_emb, fake_emb = clean_cache, net.embed(aug)[0]
    cfg = GasConfig(step=args.step, radius=0.75, mining=1, svd=0)
    out = losses(proj, disc, true_emb, fake_emb, mask_s, centre.repeat(images.shape[0], 1), noise, cfg, p=0.5,
                 fast=not reference)
    if reference:  # the reference reads its logging values every iteration (host synchronisations)
        float(out.loss.detach()), float(out.r_t), float(out.r_g), float(out.p_true), float(out.p_fake)
    out.loss.backward()
    grads = {f"P.{k}": p.grad.detach().clone() for k, p in proj.named_parameters()}
    grads.update({f"D.{k}": p.grad.detach().clone() for k, p in disc.named_parameters()})
    opt_p.step()
    opt_d.step()
    return {"loss": out.loss.detach(), "grads": grads}


def inference(net, ref_backbone, images, args, reference: bool) -> tuple[np.ndarray, np.ndarray]:
    net.eval()
    with torch.no_grad():
        if reference:
            from scipy.ndimage import gaussian_filter

            emb = embed_reference(ref_backbone(images), args.dim, args.dim, 3)
            patch = net.discriminator(net.projection(emb)).reshape(images.shape[0], args.size // 8, args.size // 8)
            scores = patch.flatten(1).max(1).values.tolist()
            up = F.interpolate(patch[:, None], size=(args.size, args.size), mode="bilinear", align_corners=False)
            maps = [gaussian_filter(m.cpu().numpy(), sigma=4).tolist() for m in up[:, 0]]
            return np.asarray(scores, np.float32), np.asarray(maps, np.float32)
        patch, grid = net.patch_scores(images)
        s, m = scores_and_maps(patch, images.shape[0], grid, (args.size, args.size))
        return s.cpu().numpy(), m.cpu().numpy()


def _fresh(net: GlassNet, device: torch.device) -> GlassNet:
    model = copy.deepcopy(net).to(device)
    model._opts = (torch.optim.Adam(model.projection.parameters(), 1e-4, weight_decay=1e-5),
                   torch.optim.AdamW(model.discriminator.parameters(), lr=2e-4))
    return model


def glass_section(args, device: torch.device) -> dict:
    torch.manual_seed(0)
    backbone = load_backbone(args.backbone, ["layer2", "layer3"], "random")
    base = GlassNet(backbone, args.dim, args.dim, 3, 1, 2, args.hidden).eval()
    inputs = make_inputs(args, device)
    out: dict = {"setting": f"{args.backbone} layer2+layer3 (random init), {args.size}px, dim {args.dim}, "
                            f"hidden {args.hidden}, batch {args.batch}, step {args.step}"}
    variants = [("reference", True, "fp32"), ("toolkit", False, "fp32"), ("toolkit_bf16", False, "bf16")]
    results = {}
    for name, reference, prec in variants:
        precision.set_precision(prec)
        torch.backends.cudnn.benchmark = not reference and device.type == "cuda"
        torch.backends.cudnn.deterministic = reference
        model = _fresh(base, device)
        ref_backbone = ReferenceBackbone(model.backbone, device)
        with torch.no_grad():
            cache = None if reference else model.embed(inputs[0])[0]
        state = copy.deepcopy({k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")})

        def step():
            model.load_state_dict(state, strict=False)  # every timed iteration starts from the same heads
            return train_iteration(model, ref_backbone, inputs, args, reference, cache)

        seconds, train, peak = _timed(step, device, args.repeats)
        row = {"train_iteration_s": seconds, "train_peak_mib": peak, "loss": float(train["loss"])}
        model.load_state_dict(state, strict=False)
        first = None
        for batch in args.infer_batches:
            images = inputs[0].repeat((batch + args.batch - 1) // args.batch, 1, 1, 1)[:batch]
            seconds_i, pred, peak_i = _timed(lambda: inference(model, ref_backbone, images, args, reference), device,
                                             args.repeats)
            row[f"infer_b{batch}_img_s"] = batch / seconds_i
            row[f"infer_b{batch}_peak_mib"] = peak_i
            if batch == args.batch:
                first = pred
        results[name] = (row, train, first)
        out[name] = row
        print(f"  {name:13s} " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    precision.set_precision("fp32")
    (ref_row, ref_train, ref_pred), (tk_row, tk_train, tk_pred) = results["reference"], results["toolkit"]
    bf_row, bf_train, bf_pred = results["toolkit_bf16"]
    grad_diff = max(float((ref_train["grads"][k] - tk_train["grads"][k]).abs().max()) for k in ref_train["grads"])
    out["agreement_fp32"] = {"loss": abs(ref_row["loss"] - tk_row["loss"]), "max_grad": grad_diff,
                             "max_score": float(np.abs(ref_pred[0] - tk_pred[0]).max()),
                             "max_map": float(np.abs(ref_pred[1] - tk_pred[1]).max())}
    out["agreement_bf16_vs_fp32"] = {"loss": abs(bf_row["loss"] - tk_row["loss"]),
                                     "max_score": float(np.abs(bf_pred[0] - tk_pred[0]).max()),
                                     "max_map": float(np.abs(bf_pred[1] - tk_pred[1]).max())}
    out["speedup_train_fp32"] = ref_row["train_iteration_s"] / tk_row["train_iteration_s"]
    out["speedup_train_bf16"] = ref_row["train_iteration_s"] / bf_row["train_iteration_s"]
    top = max(args.infer_batches)
    out["infer_top_batch"] = top
    out["infer_bf16_top_img_s"] = bf_row[f"infer_b{top}_img_s"]
    return out


def slsg_section(args, device: torch.device) -> dict:
    import contextlib
    import io

    import slsg_speed

    buffer = io.StringIO()
    argv = ["--imagesize", str(args.slsg_size), "--batch_size", str(args.slsg_batch), "--repeats", str(args.repeats),
            "--gpu", str(device.index or 0) if device.type == "cuda" else "-1"]
    with contextlib.redirect_stdout(buffer):
        slsg_speed.main(argv)
    text = buffer.getvalue()
    print("  " + text.strip().replace("\n", "\n  "), flush=True)
    return {"report": text.strip().splitlines()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of this script")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--skip_slsg", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available (use --device cpu --quick for a smoke run)",
              file=sys.stderr)
        return 2
    if args.quick:
        args.backbone, args.size, args.dim, args.hidden, args.batch, args.step = "resnet18", 64, 64, 64, 2, 3
        args.infer_batches, args.repeats, args.slsg_size, args.slsg_batch = (1, 2, 4), 1, 128, 1
    else:
        args.backbone, args.size, args.dim, args.hidden, args.batch, args.step = "wideresnet50", 288, 1536, 1024, 8, 20
        args.infer_batches, args.slsg_size, args.slsg_batch = (1, 8, 64), 256, 4
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"gpu_speed on {name}, torch {torch.__version__}", flush=True)
    report = {"device": name, "torch": torch.__version__, "quick": bool(args.quick)}
    print("GLASS:", flush=True)
    report["glass"] = glass_section(args, device)
    if not args.skip_slsg:
        print("SLSG:", flush=True)
        report["slsg"] = slsg_section(args, device)
    g = report["glass"]
    print(f"summary: GLASS training iteration x{g['speedup_train_fp32']:.2f} (fp32) / x{g['speedup_train_bf16']:.2f} "
          f"(bf16) vs the reference order (aim >= 4); inference bf16 batch {g['infer_top_batch']}: "
          f"{g['infer_bf16_top_img_s']:.0f} images/s (aim >= 3000 on an H100/H200-class GPU); "
          f"agreement fp32 max |map| {g['agreement_fp32']['max_map']:.2e}, bf16 vs fp32 max |map| "
          f"{g['agreement_bf16_vs_fp32']['max_map']:.2e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
