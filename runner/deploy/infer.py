"""Score images with an exported model: numpy, Pillow and onnxruntime or OpenVINO only (no torch, no toolkit).

    python runner/deploy/infer.py model.onnx --input photos/ --output predictions/
    python runner/deploy/infer.py model.xml --info          # or: python -m runner.deploy.infer model.xml --info

This file stands alone: copy it next to the exported model. The model's input is a batch of uint8 RGB images,
NHWC, at the model's input size; the helper brings an arbitrary photo there exactly as training did (the resize and
centre crop stored in the model's metadata, with PIL's filters), runs the model, and writes ``predictions.csv``,
``predictions.json`` and ``overlays/`` (image | JET heat map over the image) in the format of
``main.py --test predict``.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

METADATA_SECTION = "anomaly_toolkit"  # OpenVINO rt_info section; ONNX metadata_props keys are the bare names
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_DECODE_SIDE_FACTOR = 4  # decode huge images at most this many times the model's input size
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
              "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}
# OpenCV's COLORMAP_JET (256 entries, RGB), the colours of the toolkit's heat maps; tests compare it with cv2.
_JET_HEX = (
    "00008000008400008800008c00009000009400009800009c0000a00000a40000a80000ac0000b00000b40000b80000bc0000c00000c40000"
    "c80000cc0000d00000d40000d80000dc0000e00000e40000e80000ec0000f00000f40000f80000fc0000ff0004ff0008ff000cff0010ff00"
    "14ff0018ff001cff0020ff0024ff0028ff002cff0030ff0034ff0038ff003cff0040ff0044ff0048ff004cff0050ff0054ff0058ff005cff"
    "0060ff0064ff0068ff006cff0070ff0074ff0078ff007cff0080ff0084ff0088ff008cff0090ff0094ff0098ff009cff00a0ff00a4ff00a8"
    "ff00acff00b0ff00b4ff00b8ff00bcff00c0ff00c4ff00c8ff00ccff00d0ff00d4ff00d8ff00dcff00e0ff00e4ff00e8ff00ecff00f0ff00"
    "f4ff00f8ff00fcff02fffe06fffa0afff60efff212ffee16ffea1affe61effe222ffde26ffda2affd62effd232ffce36ffca3affc63effc2"
    "42ffbe46ffba4affb64effb252ffae56ffaa5affa65effa262ff9e66ff9a6aff966eff9272ff8e76ff8a7aff867eff8282ff7e86ff7a8aff"
    "768eff7292ff6e96ff6a9aff669eff62a2ff5ea6ff5aaaff56aeff52b2ff4eb6ff4abaff46beff42c2ff3ec6ff3acaff36ceff32d2ff2ed6"
    "ff2adaff26deff22e2ff1ee6ff1aeaff16eeff12f2ff0ef6ff0afaff06feff01fffc00fff800fff400fff000ffec00ffe800ffe400ffe000"
    "ffdc00ffd800ffd400ffd000ffcc00ffc800ffc400ffc000ffbc00ffb800ffb400ffb000ffac00ffa800ffa400ffa000ff9c00ff9800ff94"
    "00ff9000ff8c00ff8800ff8400ff8000ff7c00ff7800ff7400ff7000ff6c00ff6800ff6400ff6000ff5c00ff5800ff5400ff5000ff4c00ff"
    "4800ff4400ff4000ff3c00ff3800ff3400ff3000ff2c00ff2800ff2400ff2000ff1c00ff1800ff1400ff1000ff0c00ff0800ff0400ff0000"
    "fc0000f80000f40000f00000ec0000e80000e40000e00000dc0000d80000d40000d00000cc0000c80000c40000c00000bc0000b80000b400"
    "00b00000ac0000a80000a40000a000009c00009800009400009000008c0000880000840000800000"
)
JET_LUT = np.frombuffer(bytes.fromhex("".join(_JET_HEX)), np.uint8).reshape(256, 3)


class DeployError(Exception):
    """A bad model file, image path or flag; the command line prints ``error: <message>`` and exits 2."""


# ----------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Geometry:
    """The training-time geometry: resize (int = shorter side, as torchvision; [h, w] = exact) then a centre crop
    to ``imagesize`` (zero padding if the resized image is smaller), with PIL's ``interpolation`` filter."""

    resize: int | tuple[int, int]
    imagesize: tuple[int, int]
    interpolation: str

    @classmethod
    def from_dict(cls, data: dict) -> "Geometry":
        resize = data["resize"]
        resize = int(resize) if isinstance(resize, (int, float)) else (int(resize[0]), int(resize[1]))
        size = data["imagesize"]
        size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
        return cls(resize, size, str(data.get("interpolation", "bilinear")))

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        if not isinstance(self.resize, int):
            return self.resize[1], self.resize[0]
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if width <= height else (new_long, self.resize)

    def __call__(self, pil: Image.Image) -> np.ndarray:
        """RGB PIL image -> uint8 (H, W, 3) at the model's input size."""
        size = self.resized_size(*pil.size)
        if size != pil.size:
            pil = pil.resize(size, RESAMPLING[self.interpolation])
        return np.array(center_crop(pil, self.imagesize), dtype=np.uint8)


def center_crop(pil: Image.Image, shape: tuple[int, int]) -> Image.Image:
    """torchvision ``CenterCrop``: offsets ``int(round((size - crop) / 2))``; zero padding when the crop is larger."""
    crop_h, crop_w = shape
    width, height = pil.size
    if crop_w > width or crop_h > height:
        left, top = (crop_w - width) // 2 if crop_w > width else 0, (crop_h - height) // 2 if crop_h > height else 0
        padded = Image.new(pil.mode, (max(width, crop_w), max(height, crop_h)), 0)
        padded.paste(pil, (left, top))
        pil, (width, height) = padded, padded.size
    if (width, height) == (crop_w, crop_h):
        return pil
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return pil.crop((left, top, left + crop_w, top + crop_h))


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """16-bit (high byte), 32-bit integer or float ([0, 1] or [0, 255]) -> uint8, as ``datasets.image_io``."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64))
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    peak = int(array.max(initial=0))
    if array.dtype.itemsize == 2 or 255 < peak <= 65535:
        return (np.clip(array.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    if peak <= 255:
        return np.clip(array, 0, 255).astype(np.uint8)
    return np.clip(np.rint(array.astype(np.float64) * (255.0 / peak)), 0, 255).astype(np.uint8)


def _open_tiff(path: Path, first_error: Exception) -> Image.Image:
    """TIFFs PIL cannot decode (16-bit RGB, float, multi-sample), through tifffile where it is installed."""
    try:
        import tifffile

        array = np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile missing, or any of its many error types for bad files
        raise DeployError(f"cannot read image {path} (corrupt or not an image): {first_error}") from exc
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim not in (2, 3):
        raise DeployError(f"cannot read image {path}: unsupported array shape {array.shape}")
    array = _to_uint8(array)
    if array.ndim == 3:
        array = array[..., :3] if array.shape[-1] >= 3 else np.repeat(array[..., :1], 3, axis=-1)
    return Image.fromarray(array)


def read_rgb(path: str | Path, max_side: int | None = None) -> Image.Image:
    """An image file as 8-bit RGB, exactly as ``--test predict`` (``datasets.image_io.read_rgb``) reads it:
    grayscale replicated, alpha dropped (``convert("RGB")``), palettes expanded, 16-bit images by their high byte,
    32-bit / float scaled; a huge JPEG decoded reduced (draft mode) and any image whose shorter side is at least
    twice ``max_side`` reduced by PIL's box ``reduce``."""
    path = Path(path)
    Image.MAX_IMAGE_PIXELS = None  # big images are reduced below
    try:
        pil = Image.open(path)
        if max_side and pil.format == "JPEG":
            pil.draft(pil.mode, (max_side, max_side))
        pil.load()
    except FileNotFoundError as exc:
        raise DeployError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise DeployError(f"cannot read image {path} (corrupt or not an image): {exc}") from exc
        pil = _open_tiff(path, exc)
    if pil.mode.startswith("I") or pil.mode == "F":
        pil = Image.fromarray(_to_uint8(np.asarray(pil)), mode="L")
    if pil.mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    pil = pil if pil.mode == "RGB" else pil.convert("RGB")
    if max_side and min(pil.size) >= 2 * max_side:
        pil = pil.reduce(min(pil.size) // max_side)
    return pil


# ----------------------------------------------------------------------------------------------- the model
class ExportedModel:
    """An exported ``.onnx`` (onnxruntime) or ``.xml`` (OpenVINO IR) model and its metadata.

    ``run(images)``: uint8 (B, H, W, 3) RGB -> (score (B,) float32, map (B, H, W) float32, anomalous (B,) bool).
    OpenVINO is compiled with ``INFERENCE_PRECISION_HINT f32`` unless ``precision`` says otherwise (CPUs with
    AMX / AVX-512 BF16 would otherwise compute in bfloat16)."""

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "f32") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DeployError(f"--checkpoint: exported model not found: {self.path}")
        suffix = self.path.suffix.lower()
        if suffix == ".onnx":
            self.runtime = "onnxruntime"
            self._load_onnx(threads)
        elif suffix == ".xml":
            self.runtime = "openvino"
            self._load_openvino(threads, precision)
        else:
            raise DeployError(f"--checkpoint {self.path}: an exported model is a .onnx or an OpenVINO .xml file")
        missing = {"method", "input_size", "preprocessing"} - set(self.metadata)
        if missing:
            raise DeployError(f"{self.path} carries no toolkit metadata ({', '.join(sorted(missing))} missing): "
                              f"export it with main.py --test export")
        self.method = self.metadata["method"]
        preprocessing = json.loads(self.metadata["preprocessing"])
        self.geometry = Geometry.from_dict(preprocessing)
        self.mean, self.std = tuple(preprocessing["mean"]), tuple(preprocessing["std"])
        threshold = self.metadata.get("threshold", "none")
        self.threshold = None if threshold in ("", "none", "None") else float(threshold)

    def _load_onnx(self, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DeployError("onnxruntime is not installed: pip install -r requirements-deploy.txt") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DeployError(f"--checkpoint: onnxruntime cannot load {self.path} ({exc})") from exc
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self._input = self._session.get_inputs()[0].name

    def _load_openvino(self, threads: int | None, precision: str) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise DeployError("openvino is not installed: pip install -r requirements-deploy.txt") from exc
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:
            raise DeployError(f"--checkpoint: OpenVINO cannot read {self.path} ({exc})") from exc
        self.metadata = read_openvino_metadata(model)
        config = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if self.runtime == "onnxruntime":
            score, amap, anomalous = self._session.run(["score", "map", "anomalous"], {self._input: images})
        else:
            result = self._request.infer({0: images})
            score, amap, anomalous = (result[self._compiled.output(name)] for name in ("score", "map", "anomalous"))
        return np.asarray(score, np.float32), np.asarray(amap, np.float32), np.asarray(anomalous, bool)

    def prepare(self, image) -> np.ndarray:
        """A path or PIL image -> the uint8 (H, W, 3) model input."""
        height, width = self.geometry.imagesize
        pil = image if isinstance(image, Image.Image) else read_rgb(image, MAX_DECODE_SIDE_FACTOR * max(height, width))
        return self.geometry(pil.convert("RGB"))


def read_openvino_metadata(model) -> dict[str, str]:
    info = model.get_rt_info()
    if METADATA_SECTION not in info:
        return {}
    section = model.get_rt_info([METADATA_SECTION])
    try:
        keys = list(section.astype(dict).keys())
    except Exception:  # older OpenVINO: a mapping of OVAny
        keys = list(section.keys())
    return {key: str(model.get_rt_info([METADATA_SECTION, key]).astype(str)) for key in keys}


# ----------------------------------------------------------------------------------------------- outputs
def heat_overlay(rgb: np.ndarray, anomaly_map: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``0.5 * image + 0.5 * JET(map)`` as uint8 (H, W, 3), the overlay of the toolkit's heat maps."""
    lo, hi = value_range
    scaled = np.clip((anomaly_map - lo) / max(hi - lo, 1e-12), 0, 1)
    colours = JET_LUT[np.clip(scaled * 255.0, 0, 255).astype(np.uint8)]
    return (0.5 * rgb + 0.5 * colours).astype(np.uint8)


def display_rgb(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The picture ``--test predict`` shows: the normalised float32 input mapped back to uint8 (this round trip
    can land one level below the input byte; reproduced so that the overlays are the same files)."""
    scaled = image.astype(np.float32) / np.float32(255)
    normalised = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.clip((normalised * np.asarray(std) + np.asarray(mean)) * 255, 0, 255).astype(np.uint8)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_picture(path: Path, pil: Image.Image, fmt: str) -> None:
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt)
    _atomic_write(path, buffer.getvalue())


def expand_inputs(spec: str) -> tuple[list[Path], Path]:
    """An image, a folder (searched recursively) or a glob -> sorted image files and the root they are named from."""
    path = Path(spec)
    if path.is_file():
        candidates, root = [path], path.parent
    elif path.is_dir():
        candidates, root = sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()), path
    else:
        candidates = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not candidates:
            raise DeployError(f"--input: no such file, folder or matching glob: {spec}")
        root = Path(os.path.commonpath([str(p.parent) for p in candidates]))
    images = []
    for candidate in candidates:
        if candidate.name.startswith("."):
            continue
        if candidate.is_symlink() and not candidate.exists():
            warnings.warn(f"--input: skipping {candidate} (a symbolic link to a missing file)", stacklevel=2)
            continue
        if not candidate.is_file():
            continue
        if candidate.suffix.lower() in IMAGE_SUFFIXES:
            images.append(candidate)
        else:
            warnings.warn(f"--input: skipping {candidate} (not an image file)", stacklevel=2)
    if not images:
        raise DeployError(f"--input: no image files in {spec}")
    return images, root


def output_stems(images: Sequence[Path], root: Path) -> dict[Path, Path]:
    """Each image's path relative to ``root`` without its extension, or with it where stems collide (``x.png`` and
    ``x.jpg``); the output suffix is appended to the result. ``runner/predict.py`` uses this one too."""
    relative = {p: (p.relative_to(root) if p.is_relative_to(root) else Path(p.name)) for p in images}
    stems = {p: r.with_suffix("") for p, r in relative.items()}
    counts = Counter(stems.values())
    named = {p: (relative[p] if counts[stems[p]] > 1 else stems[p]) for p in images}
    if len(set(named.values())) < len(named):
        named = dict(relative)
    return named


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def score_folder(model: ExportedModel, spec: str, output: str | Path, batch_size: int = 8,
                 threshold: float | None = None, save_maps: bool = False, checkpoint_name: str | None = None,
                 gallery: list | None = None) -> list:
    """Score an image, folder or glob; write ``predictions.csv``, ``predictions.json``, ``overlays/`` (and
    ``maps/*.tiff`` float32 with ``save_maps``) under ``output``, as ``main.py --test predict``. Returns the rows;
    ``gallery``, when given, receives (overlay path relative to ``output``, image, score, decision) per image."""
    images, root = expand_inputs(spec)
    names = output_stems(images, root)
    output = Path(output)
    threshold = model.threshold if threshold is None else float(threshold)
    override = threshold != model.threshold
    rows = []
    for batch in _batches(images, max(1, int(batch_size))):
        arrays, kept = [], []
        for path in batch:
            try:
                arrays.append(model.prepare(path))
                kept.append(path)
            except DeployError as exc:
                warnings.warn(f"skipping: {exc}", stacklevel=2)
        if not arrays:
            continue
        scores, maps, anomalous = model.run(np.stack(arrays))
        for path, rgb, score, anomaly_map, flag in zip(kept, arrays, scores, maps, anomalous):
            stem = names[path]
            if threshold is None:
                decision = None
            else:
                decision = bool(score >= threshold) if override else bool(flag)
            shown = display_rgb(rgb, model.mean, model.std)
            picture = np.concatenate([shown, heat_overlay(shown, anomaly_map)], 1)
            _write_picture(output / "overlays" / f"{stem}.png", Image.fromarray(picture), "PNG")
            if save_maps:
                _write_picture(output / "maps" / f"{stem}.tiff",
                               Image.fromarray(np.asarray(anomaly_map, np.float32)), "TIFF")
            rows.append({"image": str(path), "score": float(score), "threshold": threshold, "anomalous": decision})
            if gallery is not None:
                gallery.append((f"overlays/{stem}.png", str(path), float(score), decision))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["image", "score", "threshold", "anomalous"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(output / "predictions.csv", buffer.getvalue().encode())
    summary = {"checkpoint": checkpoint_name or str(model.path), "method": model.method, "threshold": threshold,
               "runtime": model.runtime, "images": rows}
    _atomic_write(output / "predictions.json", (json.dumps(summary, indent=2) + "\n").encode())
    flagged = sum(1 for r in rows if r["anomalous"])
    print(f"{len(rows)} image(s) scored with {model.method.upper()} ({model.runtime}); "
          + (f"{flagged} above the threshold {threshold:.4g}; " if threshold is not None else
             "no threshold stored (pass --threshold for decisions); ")
          + f"overlays and predictions.csv in {output}")
    return rows


def format_metadata(metadata: dict[str, str]) -> str:
    lines = []
    for key in sorted(metadata):
        value = metadata[key]
        try:
            parsed = json.loads(value)
            value = json.dumps(parsed) if isinstance(parsed, (dict, list)) else value
        except ValueError:
            pass
        lines.append(f"{key:<20} {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score images with an exported anomaly model (no torch needed).")
    parser.add_argument("model", help="an exported .onnx or OpenVINO .xml file")
    parser.add_argument("--input", help="an image, a folder (searched recursively) or a glob")
    parser.add_argument("--output", default="predictions", help="where predictions.csv and overlays/ go")
    parser.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the stored one)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the runtime")
    parser.add_argument("--save_maps", action="store_true", help="also write maps/*.tiff (float32)")
    parser.add_argument("--info", action="store_true", help="print the model's metadata and exit")
    args = parser.parse_args(argv)
    try:
        model = ExportedModel(args.model, threads=args.threads)
        if args.info or not args.input:
            print(format_metadata(model.metadata))
            return 0
        score_folder(model, args.input, args.output, args.batch_size, args.threshold, args.save_maps)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
