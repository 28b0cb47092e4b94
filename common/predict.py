"""Score arbitrary images with a trained model: the Python API and ``main.py --test predict``.

    from common.predict import load
    detector = load("results/models/backbone_0/mvtec_carpet")      # a checkpoint folder or file
    scores, maps = detector.predict(["a.png", "b.png"])            # (N,), (N, H, W) float32
    anomalous = detector.decide(scores)

Images get exactly the training preprocessing (stored beside the checkpoint in ``toolkit.json``); a reference
checkpoint without that file is used with the flags given. Memory does not grow with the number of images: the CLI
streams batches and writes each result as it goes.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from common.atomic import (atomic_write_bytes, atomic_write_image, atomic_write_text, atomic_write_tiff,
                           check_writable)
from common.deployment import read_deployment
from common.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_DECODE_SIDE_FACTOR = 4  # decode huge images at most this many times the model's input size


def detect_method(checkpoint: Path) -> str:
    """Which method wrote a checkpoint (file or folder), from its file names and keys."""
    checkpoint = Path(checkpoint)
    deployment = read_deployment(checkpoint) if checkpoint.exists() else None
    if deployment:
        return deployment["method"]
    if checkpoint.is_dir():
        if list(checkpoint.glob("ckpt_best_*.pth")) or (checkpoint / "ckpt.pth").is_file():
            return "glass"
        if list(checkpoint.glob("*.tch")):
            return "slsg"
        raise UserError(f"--checkpoint: no GLASS (ckpt_best_*.pth, ckpt.pth) or SLSG (*.tch) checkpoint in {checkpoint}")
    if not checkpoint.is_file():
        raise UserError(f"--checkpoint: not found: {checkpoint}")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"--checkpoint: cannot read {checkpoint} ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and "discriminator" in state:
        return "glass"
    if isinstance(state, dict) and any(str(k).startswith("encoder_segment.") for k in state):
        return "slsg"
    if isinstance(state, dict) and str(state.get("format", "")).startswith("slsg"):
        return "slsg"  # the toolkit's resumable `_last.tch` (model + optimiser + step)
    raise UserError(f"--checkpoint: {checkpoint} is neither a GLASS nor an SLSG checkpoint")


# Flags that fix a model's architecture or input: a trained model cannot be used with other values.
MODEL_FLAGS = ("backbone_names", "layers_to_extract_from", "pretrain_embed_dimension", "target_embed_dimension",
               "patchsize", "dsc_layers", "dsc_hidden", "pre_proj", "imagesize", "resize")


def _model_args(method: str, deployment: dict | None, given: argparse.Namespace | None) -> argparse.Namespace:
    """Defaults, then the flags stored at training time, then flags the user gave explicitly (which must not
    contradict the stored architecture or input size)."""
    from main import build_parser

    parser = build_parser(method)
    defaults = vars(parser.parse_args(["--method", method]))
    merged = dict(defaults)
    stored = {k: v for k, v in (deployment or {}).get("args", {}).items() if k in defaults}
    merged.update(stored)
    if given is not None:
        explicit = {k: v for k, v in vars(given).items() if k in defaults and v != defaults.get(k)}
        for flag in MODEL_FLAGS:
            if flag in explicit and flag in stored and explicit[flag] != stored[flag]:
                raise UserError(f"--{flag} {_show(explicit[flag])}: the checkpoint was trained with --{flag} "
                                f"{_show(stored[flag])} (leave the flag out to use the stored value)")
        merged.update(explicit)
    merged["method"] = method
    return argparse.Namespace(**merged)


def _show(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


@dataclass
class Detector:
    model: object
    method: str
    preprocessing: object
    threshold: float | None
    device: torch.device
    batch_size: int = 8

    def predict(self, images: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Images as paths, PIL images or (H,W[,C]) uint8 arrays -> scores (N,) and maps (N,H,W) float32."""
        scores, maps = [], []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocessing.image(to_pil(x)) for x in images[start:start + self.batch_size]])
            s, m = self.model.predict(batch)
            scores.append(np.asarray(s, np.float64))
            maps.append(np.asarray(m, np.float32))
        if not scores:
            return np.zeros(0), np.zeros((0, 0, 0), np.float32)
        return np.concatenate(scores), np.concatenate(maps)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise UserError("no decision threshold: the checkpoint has none stored; pass --threshold")
        return np.asarray(scores) >= self.threshold


def load(checkpoint: str | Path, method: str | None = None, device: str | torch.device = "cpu",
         args: argparse.Namespace | None = None, threshold: float | None = None) -> Detector:
    """Load a trained model for prediction. ``args``: flags for a checkpoint that stores none (reference files)."""
    from main import _method_class

    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise UserError(f"--checkpoint: not found: {checkpoint}")
    found = detect_method(checkpoint)
    if method and method != found:
        raise UserError(f"--checkpoint {checkpoint} is a {found.upper()} checkpoint, not {method.upper()}: "
                        f"use --method {found}")
    deployment = read_deployment(checkpoint)
    ns = _model_args(found, deployment, args)
    method_cls = _method_class(found)
    device = torch.device(device)
    cls_name = (deployment or {}).get("args", {}).get("class_name") or _class_from_path(checkpoint)
    model = method_cls.from_args(ns, device, cls_name)
    model.load(checkpoint, which="best")
    if deployment and deployment.get("preprocessing"):
        from datasets.preprocess import Preprocessing

        preprocessing = Preprocessing.from_dict(deployment["preprocessing"])
    else:
        preprocessing = model.preprocessing(train=False)
    if threshold is None and deployment:
        threshold = deployment.get("threshold")
    return Detector(model, found, preprocessing, threshold, device, getattr(ns, "batch_size", 8) or 8)


def _class_from_path(checkpoint: Path) -> str:
    name = checkpoint.name if checkpoint.is_dir() else checkpoint.stem
    name = name[:-5] if name.endswith("_last") else name
    return name.split("_", 1)[1] if "_" in name else name


def to_pil(image, max_side: int | None = None) -> Image.Image:
    """A path, PIL image or array as an RGB PIL image (grayscale, RGBA, palette and 16-bit converted).

    Huge files are decoded at a reduced size (JPEG draft mode, then PIL's box reduce), never at full resolution
    when that is many times the model's input."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        Image.MAX_IMAGE_PIXELS = None  # we reduce big images ourselves
        try:
            pil = Image.open(path)
            if max_side:
                pil.draft("RGB", (max_side, max_side))
            pil.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"cannot read image {path}: {exc}") from exc
    elif isinstance(image, Image.Image):
        pil = image
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        pil = Image.fromarray(array)
    if max_side and min(pil.size) > max_side:
        factor = max(1, min(pil.size) // max_side)
        pil = pil.reduce(factor)
    if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(pil, dtype=np.float64)
        pil = Image.fromarray((255 * array / max(array.max(), 1)).astype(np.uint8))
    if pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
        pil = pil.convert("RGBA")
        background = Image.new("RGBA", pil.size, (0, 0, 0, 255))
        pil = Image.alpha_composite(background, pil)
    return pil.convert("RGB")


def expand_inputs(spec: str) -> tuple[list[Path], Path]:
    """An image, a folder (searched recursively) or a glob -> sorted image files and the root they are named from."""
    path = Path(spec)
    if path.is_file():
        candidates, root = [path], path.parent
    elif path.is_dir():
        candidates, root = sorted(p for p in path.rglob("*") if p.is_file()), path
    else:
        candidates = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        root = Path(glob.escape(spec)).parent if not candidates else Path(_common_root(candidates))
        if not candidates:
            raise UserError(f"--input: no such file, folder or matching glob: {spec}")
    images = []
    for candidate in candidates:
        if candidate.name.startswith("."):
            continue
        if candidate.suffix.lower() in IMAGE_SUFFIXES:
            images.append(candidate)
        else:
            warnings.warn(f"--input: skipping {candidate} (not an image file)", stacklevel=2)
    if not images:
        raise UserError(f"--input: no image files in {spec}")
    return images, root


def _common_root(paths: Sequence[Path]) -> str:
    import os

    return os.path.commonpath([str(p.parent) for p in paths])


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_predict(args: argparse.Namespace, method_cls) -> int:
    """``main.py --test predict --checkpoint C --input I --output O``."""
    from tqdm import tqdm

    from common.device import pick_device
    from common.results import heatmap_panel

    if not args.checkpoint:
        raise UserError("--test predict needs --checkpoint (a checkpoint file or folder)")
    if not getattr(args, "input", None):
        raise UserError("--test predict needs --input (an image, a folder or a glob)")
    output = Path(args.output or "results/predictions")
    found = detect_method(Path(args.checkpoint))
    if args.method_given and args.method != found:
        raise UserError(f"--checkpoint {args.checkpoint} is a {found.upper()} checkpoint, not {args.method.upper()}: "
                        f"use --method {found}")
    images, root = expand_inputs(args.input)
    check_writable(output, "--output")
    detector = load(args.checkpoint, method=args.method if args.method_given else None,
                    device=pick_device(args.gpu), args=args, threshold=args.threshold)
    size = int(detector.preprocessing.imagesize)
    pre = detector.preprocessing
    rows, gallery = [], []
    for batch in tqdm(list(_batches(images, detector.batch_size)), desc="predict", disable=None):
        pils = []
        kept = []
        for path in batch:
            try:
                pils.append(to_pil(path, max_side=MAX_DECODE_SIDE_FACTOR * size))
                kept.append(path)
            except UserError as exc:
                warnings.warn(f"skipping: {exc}", stacklevel=2)
        if not pils:
            continue
        tensors = torch.stack([pre.image(p) for p in pils])
        scores, maps = detector.model.predict(tensors)
        for path, tensor, score, anomaly_map in zip(kept, tensors, scores, maps):
            rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
            decision = None if detector.threshold is None else bool(score >= detector.threshold)
            rgb = np.clip((tensor.numpy().transpose(1, 2, 0) * np.asarray(pre.std) + np.asarray(pre.mean)) * 255,
                          0, 255).astype(np.uint8)
            panel = heatmap_panel(rgb, None, np.asarray(anomaly_map))
            overlay = panel[:, 2 * rgb.shape[1]:]
            atomic_write_image(output / "overlays" / rel.with_suffix(".png"), np.concatenate([rgb, overlay], 1))
            gallery.append((str(Path("overlays") / rel.with_suffix(".png")), str(path), float(score), decision))
            if args.save_maps:
                atomic_write_tiff(output / "maps" / rel.with_suffix(".tiff"), np.asarray(anomaly_map, np.float32))
            rows.append({"image": str(path), "score": float(score), "threshold": detector.threshold,
                         "anomalous": decision})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["image", "score", "threshold", "anomalous"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(output / "predictions.csv", buffer.getvalue())
    atomic_write_bytes(output / "predictions.json", (json.dumps(
        {"checkpoint": str(args.checkpoint), "method": detector.method, "threshold": detector.threshold,
         "images": rows}, indent=2) + "\n").encode())
    from report import write_predict_report
    write_predict_report(output, gallery, detector.threshold)
    flagged = sum(1 for r in rows if r["anomalous"])
    print(f"{len(rows)} image(s) scored with {detector.method.upper()}; "
          + (f"{flagged} above the threshold {detector.threshold:.4g}; " if detector.threshold is not None else
             "no threshold stored (pass --threshold for decisions); ")
          + f"overlays and predictions.csv in {output}")
    return 0
