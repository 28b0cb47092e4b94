"""Score arbitrary images with a trained model: the Python API and ``main.py --test predict``.

    from runner.predict import load
    detector = load("results/models/backbone_0/mvtec_carpet")      # a checkpoint folder or file
    scores, maps = detector.predict(["a.png", "b.png"])            # (N,), (N, H, W) float32
    anomalous = detector.decide(scores)

The model is rebuilt from what the checkpoint stores (method, config, preprocessing, threshold); a reference
checkpoint without that record is used with the flags given. Images are read exactly as for training and testing
(``datasets.image_io.read_rgb``). Memory does not grow with the number of images: the CLI streams batches and
writes each result as it goes.
"""
from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from common.atomic import atomic_write_bytes, atomic_write_image, atomic_write_text, atomic_write_tiff, check_writable
from common.errors import UserError
from datasets.image_io import read_rgb, to_rgb
from datasets.tiling import maybe_tiled
from runner.deploy import infer as exported  # torch-free: input listing and output names
from runner.registry import method_class
from runner.report import write_predict_report
from runner.results import denormalize, heatmap_panel
from runner.stored_model import detect_method, reconcile, stored_description

MAX_DECODE_SIDE_FACTOR = 4  # decode huge images at most this many times the model's input size


@dataclass
class Detector:
    model: object
    method: str
    preprocessing: object
    threshold: float | None
    device: torch.device
    batch_size: int = 8

    def read(self, image) -> Image.Image:
        """A path, PIL image or array as the RGB image the model sees (the training reader's conversions)."""
        max_side = MAX_DECODE_SIDE_FACTOR * max(self.preprocessing.output_shape)  # (H, W) inputs: tiled models
        if isinstance(image, (str, Path)):
            return read_rgb(image, max_side=max_side)
        return to_rgb(image, max_side=max_side)

    def predict(self, images: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Images as paths, PIL images or (H,W[,C]) arrays -> scores (N,) and maps (N,H,W) float32."""
        scores, maps = [], []
        for start in range(0, len(images), self.batch_size):
            pils = [x if isinstance(x, Image.Image) and x.mode == "RGB" else self.read(x)
                    for x in images[start:start + self.batch_size]]
            batch = torch.stack([self.preprocessing.image(p) for p in pils])
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
         flags: dict | None = None, threshold: float | None = None) -> Detector:
    """Load a trained model for prediction. ``flags``: flag values given explicitly (they must agree with the
    stored settings; for a reference checkpoint that stores none, they build the model)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise UserError(f"--checkpoint: not found: {checkpoint}")
    found = detect_method(checkpoint)
    if method and method != found:
        raise UserError(f"--checkpoint {checkpoint} is a {found.upper()} checkpoint, not {method.upper()}: "
                        f"use --method {found}")
    flags = dict(flags or {})
    method_cls = method_class(found)
    stored = stored_description(checkpoint)
    config = reconcile(method_cls.config_class, method_cls.config_class.from_flags(flags), flags, stored, "")
    cls_name = (stored or {}).get("class_name") or _class_from_path(checkpoint)
    model = method_cls.build(config, torch.device(device), cls_name, (stored or {}).get("dataset") or "mvtec")
    model.load(checkpoint, which="best")
    # a model trained on tiles scores tile by tile; the stored preprocessing is its whole-image scaling
    model = maybe_tiled(model, config.tile, config.tile_overlap)
    if stored and stored.get("preprocessing"):
        from datasets.preprocess import Preprocessing

        preprocessing = Preprocessing.from_dict(stored["preprocessing"])
    else:
        preprocessing = model.preprocessing(train=False)
    if threshold is None and stored:
        threshold = stored.get("threshold")
    return Detector(model, found, preprocessing, threshold, torch.device(device), int(config.batch_size))


def _class_from_path(checkpoint: Path) -> str:
    name = checkpoint.name if checkpoint.is_dir() else checkpoint.stem
    name = name[:-5] if name.endswith("_last") else name
    return name.split("_", 1)[1] if "_" in name else name


def expand_inputs(spec: str) -> tuple[list[Path], Path]:
    """An image, a folder (searched recursively) or a glob -> sorted image files and the root they are named from.
    One listing for both predict paths: the torch-free helper's (``runner/deploy/infer.py``)."""
    try:
        return exported.expand_inputs(spec)
    except exported.DeployError as error:
        raise UserError(str(error)) from None


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _readable(detector: Detector, paths: Sequence[Path]) -> tuple[list[Path], list[Image.Image]]:
    kept, pils = [], []
    for path in paths:
        try:
            pils.append(detector.read(path))
            kept.append(path)
        except UserError as exc:
            warnings.warn(f"skipping: {exc}", stacklevel=3)
    return kept, pils


def _write_image_outputs(output: Path, stem: Path, rgb: np.ndarray, anomaly_map: np.ndarray,
                         save_maps: bool) -> None:
    """``stem`` is the input's relative path without (or, where stems collide, with) its extension."""
    panel = heatmap_panel(rgb, None, np.asarray(anomaly_map))
    overlay = panel[:, 2 * rgb.shape[1]:]
    atomic_write_image(output / "overlays" / f"{stem}.png", np.concatenate([rgb, overlay], 1))
    if save_maps:
        atomic_write_tiff(output / "maps" / f"{stem}.tiff", np.asarray(anomaly_map, np.float32))


def _write_tables(output: Path, checkpoint: str, detector: Detector, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["image", "score", "threshold", "anomalous"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(output / "predictions.csv", buffer.getvalue())
    atomic_write_bytes(output / "predictions.json", (json.dumps(
        {"checkpoint": str(checkpoint), "method": detector.method, "threshold": detector.threshold,
         "images": rows}, indent=2) + "\n").encode())


def run_predict(invocation) -> int:
    """``main.py --test predict --checkpoint C --input I --output O``."""
    from tqdm import tqdm

    from common.device import pick_device

    options = invocation.options
    if not options.checkpoint:
        raise UserError("--test predict needs --checkpoint (a checkpoint file or folder)")
    if not options.input:
        raise UserError("--test predict needs --input (an image, a folder or a glob)")
    output = Path(options.output or "results/predictions")
    found = detect_method(Path(options.checkpoint))
    if options.method_given and options.method != found:
        raise UserError(f"--checkpoint {options.checkpoint} is a {found.upper()} checkpoint, not "
                        f"{options.method.upper()}: use --method {found}")
    images, root = expand_inputs(options.input)
    names = exported.output_stems(images, root)
    detector = load(options.checkpoint, method=options.method if options.method_given else None,
                    device=pick_device(options.gpu), flags=invocation.given, threshold=options.threshold)
    check_writable(output, "--output")
    pre = detector.preprocessing
    rows, gallery = [], []
    for batch in tqdm(list(_batches(images, detector.batch_size)), desc="predict", disable=None):
        kept, pils = _readable(detector, batch)
        if not pils:
            continue
        scores, maps = detector.predict(pils)
        for path, pil, score, anomaly_map in zip(kept, pils, scores, maps):
            rgb = denormalize(pre.image(pil).numpy(), pre.mean, pre.std)
            _write_image_outputs(output, names[path], rgb, anomaly_map, options.save_maps)
            decision = None if detector.threshold is None else bool(score >= detector.threshold)
            gallery.append((f"overlays/{names[path]}.png", str(path), float(score), decision))
            rows.append({"image": str(path), "score": float(score), "threshold": detector.threshold,
                         "anomalous": decision})
    _write_tables(output, options.checkpoint, detector, rows)
    write_predict_report(output, gallery, detector.threshold)
    flagged = sum(1 for r in rows if r["anomalous"])
    print(f"{len(rows)} image(s) scored with {detector.method.upper()}; "
          + (f"{flagged} above the threshold {detector.threshold:.4g}; " if detector.threshold is not None else
             "no threshold stored (pass --threshold for decisions); ")
          + f"overlays and predictions.csv in {output}")
    return 0
