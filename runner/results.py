"""Everything a run writes under ``--results_path``: results.csv, heat maps, saved maps, the run record.

All writes are atomic (``common.atomic``), so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from common.atomic import atomic_save_npz, atomic_write_bytes, atomic_write_image, atomic_write_text, atomic_write_tiff

# The reference's columns first, in the reference's order, so that old CSVs compare one to one.
REFERENCE_COLUMNS = ["image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pixel_pro", "best_epoch"]
EXTRA_COLUMNS = ["au_pro", "last_epoch", "last_image_auroc", "last_pixel_auroc", "last_au_pro", "selected_by"]
TEXT_COLUMNS = {"selected_by"}  # which rule kept the epoch (--select): text, not averaged
LOCO_COLUMNS = ["image_auroc_logical", "image_auroc_structural", "au_spro_logical", "au_spro_structural",
                "au_spro_mean"]


@dataclass
class Predictions:
    """One evaluation pass over a test set, at the evaluation resolution (H, W)."""

    image_paths: list[str]
    anomaly_types: list[str]
    labels: np.ndarray  # (N,) int
    scores: np.ndarray  # (N,) float
    maps: np.ndarray  # (N, H, W) float32
    masks: np.ndarray  # (N, H, W) uint8 {0, 1}


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_results_csv(path: Path, rows: dict[str, dict]) -> Path:
    """``results.csv`` as the reference writes it: ``Row Names`` + columns, one row per ``<dataset>_<class>``, then
    ``Mean`` (the mean of every numeric column, ``best_epoch`` included, as pandas does), CRLF line ends.
    Extra columns (exact AU-PRO, last epoch, LOCO metrics) follow the reference ones."""
    present = {key for row in rows.values() for key in row}
    columns = REFERENCE_COLUMNS + [c for c in EXTRA_COLUMNS + LOCO_COLUMNS if c in present]
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # the csv module's default line end is \r\n, as in the reference file
    writer.writerow(["Row Names", *columns])
    for name, row in rows.items():
        writer.writerow([name, *(_format(row.get(c)) for c in columns)])
    means = []
    for column in columns:
        if column in TEXT_COLUMNS:
            means.append("")
            continue
        values = [float(row[c]) for row in rows.values() for c in [column]
                  if row.get(c) is not None and not (isinstance(row[c], float) and math.isnan(row[c]))]
        means.append(repr(float(np.mean(values))) if values else "")
    writer.writerow(["Mean", *means])
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def read_results_csv(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = {}
        for row in reader:
            name = row.pop("Row Names")
            if name == "Mean":
                continue
            rows[name] = {k: (v if k in TEXT_COLUMNS and v not in ("", None) else _number(v))
                          for k, v in row.items()}
        return rows


def _number(text: str | None) -> int | float | None:
    """A cell as written: ``""`` -> None, ``"3"`` -> 3 (epochs stay integers on a rewrite), else a float."""
    if text in ("", None):
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def format_table(rows: dict[str, dict], columns: Sequence[str]) -> str:
    """A fixed-width table of percentages (the console print of the reference, x100 with 2 decimals)."""
    header = f"{'class':<28}" + "".join(f"{c:>18}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, row in rows.items():
        cells = []
        for c in columns:
            v = row.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append(f"{'-':>18}")
            elif c.endswith("epoch"):
                cells.append(f"{int(v):>18d}")
            else:
                cells.append(f"{100 * float(v):>18.2f}")
        lines.append(f"{name:<28}" + "".join(cells))
    return "\n".join(lines)


def jet(values: np.ndarray) -> np.ndarray:
    """(H,W) values in [0,1] -> (H,W,3) uint8 RGB with OpenCV's JET colour map (as the reference heat maps)."""
    import cv2

    gray = np.clip(values * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_JET)[..., ::-1]


def denormalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(3,H,W) normalised -> (H,W,3) uint8."""
    rgb = image.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)


def heatmap_panel(image_rgb: np.ndarray, mask: np.ndarray | None, anomaly_map: np.ndarray,
                  value_range: tuple[float, float] | None = None) -> np.ndarray:
    """image | ground truth | JET heat map over the image, side by side: (H, 3W, 3) uint8.

    ``value_range`` (lo, hi) maps to blue..red; default (0, 1), the range of both methods' probabilities. The runner
    passes the range of all maps of a class, so that colours compare across that class's images."""
    h, w = anomaly_map.shape
    lo, hi = value_range if value_range is not None else (0.0, 1.0)
    scaled = (anomaly_map - lo) / max(hi - lo, 1e-12)
    overlay = (0.5 * image_rgb + 0.5 * jet(np.clip(scaled, 0, 1))).astype(np.uint8)
    gt = np.zeros((h, w, 3), np.uint8) if mask is None else np.repeat((mask > 0)[..., None] * 255, 3, 2).astype(np.uint8)
    return np.concatenate([image_rgb, gt, overlay], axis=1)


def save_heatmap(path: Path, panel: np.ndarray) -> None:
    atomic_write_image(path, panel)


def to_original_resolution(anomaly_map: np.ndarray, preprocessing, width: int, height: int) -> np.ndarray:
    """Put an evaluation-resolution map back on the original ``width`` x ``height`` image grid.

    The inverse of the preprocessing geometry: the map covers the centre crop of the resized image; it is pasted
    there (pixels the crop dropped get the map's minimum, i.e. "most normal"), then the resized canvas is brought to
    the original size bilinearly. The official MVTec AD / LOCO evaluation scripts want maps at this size."""
    import cv2

    rw, rh = preprocessing.resized_size(width, height)
    ch, cw = anomaly_map.shape
    canvas = np.full((max(rh, ch), max(rw, cw)), float(anomaly_map.min()), np.float32)
    top, left = int(round((rh - ch) / 2.0)), int(round((rw - cw) / 2.0))
    if top >= 0 and left >= 0:
        canvas[top:top + ch, left:left + cw] = anomaly_map
    else:  # the crop was larger than the resized image (zero padding): cut the padding off again
        canvas = anomaly_map[max(-top, 0):max(-top, 0) + rh, max(-left, 0):max(-left, 0) + rw]
    canvas = canvas[:rh, :rw]
    if (rw, rh) == (width, height):
        return np.ascontiguousarray(canvas, np.float32)
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def save_maps(out_dir: Path, cls_name: str, predictions: Predictions, preprocessing=None,
              originals: Sequence[str] | None = None) -> None:
    """``--save_maps``: ``scores.csv`` (image, label, score), ``maps.npz`` (one float32 map per image at the
    evaluation resolution, keyed like ``image``) and ``tiff/<class>/test/<type>/<id>.tiff`` in the official MVTec
    evaluation layout — at the original image resolution when ``preprocessing`` and the ``originals`` (image files)
    are given, as the official evaluation scripts and ``python -m metrics.evaluate`` expect."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "label", "score"])
    for path, label, score in zip(predictions.image_paths, predictions.labels, predictions.scores):
        writer.writerow([path, int(label), repr(float(score))])
    atomic_write_text(out_dir / "scores.csv", buffer.getvalue())
    atomic_save_npz(out_dir / "maps.npz", **{p: m.astype(np.float32) for p, m in
                                              zip(predictions.image_paths, predictions.maps)})
    for index, (path, kind, anomaly_map) in enumerate(zip(predictions.image_paths, predictions.anomaly_types,
                                                          predictions.maps)):
        if preprocessing is not None and originals is not None:
            from PIL import Image

            with Image.open(originals[index]) as image:  # reads the header only
                anomaly_map = to_original_resolution(anomaly_map, preprocessing, *image.size)
        atomic_write_tiff(out_dir / "tiff" / cls_name / "test" / kind / f"{Path(path).stem}.tiff", anomaly_map)


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("torch", "torchvision", "timm", "numpy", "scipy", "sklearn", "skimage", "cv2", "PIL"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except Exception:  # pragma: no cover - optional packages
            pass
    return out


def write_run_record(path: Path, argv: Sequence[str], args: dict) -> None:
    record = {"argv": list(argv), "args": args, "versions": versions()}
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
