"""MVTec LOCO AD: the official layout (one folder of defect-instance PNGs per anomalous test image, plus
``defects_config.json``) and the merged layout SLSG expects (``ground_truth/<type>/<stem>_mask.png``).

    <root>/<object>/{train,validation}/good/*.png
    <root>/<object>/test/{good,logical_anomalies,structural_anomalies}/*.png
    <root>/<object>/ground_truth/<type>/<stem>/000.png, 001.png, ...     official
    <root>/<object>/ground_truth/<type>/<stem>_mask.png                  merged
    <root>/<object>/defects_config.json
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from common.atomic import atomic_write_image
from common.errors import UserError
from datasets.image_io import list_dirs, list_images, open_image, read_mask
from datasets.mvtec_layout import good_samples
from datasets.pairing import pair_masks
from datasets.samples import Sample

CONFIG_NAME = "defects_config.json"


@dataclass(frozen=True)
class DefectSpec:
    """One entry of ``defects_config.json``."""

    defect_name: str
    pixel_value: int
    saturation_threshold: float
    relative_saturation: bool

    def saturation_area(self, area: int) -> int:
        """Pixels of a channel with ``area`` defect pixels that saturate its sPRO."""
        if self.relative_saturation:
            return int(self.saturation_threshold * area)
        return int(min(self.saturation_threshold, area))


@dataclass
class DefectChannel:
    """One defect instance of one test image, at the original resolution."""

    mask: np.ndarray  # (H, W) bool
    defect_name: str
    pixel_value: int
    saturation_area: int
    path: str


@dataclass
class LocoGroundTruth:
    """Merged mask and defect channels of one test image (what sPRO needs)."""

    merged: np.ndarray  # (H, W) bool, OR of the channels
    channels: list[DefectChannel] = field(default_factory=list)


def load_defects_config(path: str | os.PathLike) -> dict[int, DefectSpec]:
    """``defects_config.json`` -> specs keyed by ``pixel_value``; schema errors raise ``UserError`` naming the file."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"LOCO defects config not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read LOCO defects config {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise UserError(f"{path}: expected a JSON list of defect entries")
    specs: dict[int, DefectSpec] = {}
    for entry in entries:
        try:
            spec = DefectSpec(str(entry["defect_name"]), int(entry["pixel_value"]),
                              float(entry["saturation_threshold"]), bool(entry["relative_saturation"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: malformed defect entry {entry!r} ({exc})") from exc
        if not 1 <= spec.pixel_value <= 255:
            raise UserError(f"{path}: pixel_value must be in 1..255 in {entry!r}")
        if spec.relative_saturation and not 0 < spec.saturation_threshold <= 1:
            raise UserError(f"{path}: a relative saturation_threshold must lie in (0, 1] in {entry!r}")
        if spec.pixel_value in specs:
            raise UserError(f"{path}: pixel_value {spec.pixel_value} used twice")
        specs[spec.pixel_value] = spec
    return specs


def _anomaly_samples(kind: str, images: list[Path], gt_dir: Path, mask_pairing: str) -> list[Sample]:
    official = [gt_dir / p.stem for p in images]
    if any(d.is_dir() for d in official) or list_dirs(gt_dir):  # sub-folders: the official layout
        missing = [d.name for d in official if not d.is_dir()]
        if missing:
            raise UserError(f"LOCO ground truth: no defect folder for {len(missing)} image(s) in {gt_dir}: "
                            f"{', '.join(missing[:5])}")
        out = []
        for image, folder in zip(images, official):
            channels = [str(c.absolute()) for c in list_images(folder)]
            if not channels:
                raise UserError(f"LOCO ground-truth folder {folder} holds no defect PNG")
            out.append(Sample(str(image.absolute()), 1, kind, str(folder.absolute()), channels))
        return out
    masks = pair_masks(images, list_images(gt_dir), gt_dir, mask_pairing)
    return [Sample(str(p.absolute()), 1, kind, str(m.absolute())) for p, m in zip(images, masks)]


def load_loco(root: str | os.PathLike, cls: str, split: str, *, mask_pairing: str = "stem") -> list[Sample]:
    """Samples of one LOCO object. Test order: types sorted (good, logical_anomalies, structural_anomalies), files
    sorted. Anomalies in the official layout carry ``mask_path`` = their ground-truth folder and
    ``defect_channels``; in the merged layout ``mask_path`` is the merged PNG."""
    class_dir = Path(root).absolute() / cls
    if split in ("train", "validation"):
        return good_samples(class_dir / split / "good", split)
    if split != "test":
        raise UserError(f"unknown split {split!r}; choose from train, test, validation")
    test_dir = class_dir / "test"
    if not test_dir.is_dir():
        raise UserError(f"test folder not found: {test_dir}")
    samples: list[Sample] = []
    for kind in list_dirs(test_dir):
        images = list_images(test_dir / kind)
        if kind == "good":
            samples += [Sample(str(p.absolute()), 0, kind, None) for p in images]
        elif images:
            gt_dir = class_dir / "ground_truth" / kind
            if not gt_dir.is_dir():
                raise UserError(f"LOCO ground-truth folder missing for {kind!r}: {gt_dir}")
            samples += _anomaly_samples(kind, images, gt_dir, mask_pairing)
    if not samples:
        raise UserError(f"test folder {test_dir} holds no images")
    return samples


def _read_channel(path: Path) -> np.ndarray:
    """Raw values of a defect PNG (the pixel value names the defect type)."""
    array = np.asarray(open_image(path))
    return array[..., 0] if array.ndim == 3 else array


def merged_mask(sample: Sample) -> Image.Image:
    """The ground truth of a test sample as one "L" image (255 = defect): the OR of its defect channels, or its
    merged mask file; all zeros (image size) for a normal image."""
    if sample.defect_channels:
        merged = None
        for path in sample.defect_channels:
            channel = _read_channel(Path(path)) > 0
            if merged is not None and channel.shape != merged.shape:
                raise UserError(f"defect channel {path} is {channel.shape[::-1]} px, others in its folder "
                                f"{merged.shape[::-1]}")
            merged = channel if merged is None else merged | channel
        return Image.fromarray(np.where(merged, 255, 0).astype(np.uint8), mode="L")
    if sample.mask_path:
        return read_mask(sample.mask_path)
    with Image.open(sample.image_path) as image:
        return Image.new("L", image.size, 0)


def loco_ground_truth(sample: Sample, config: dict[int, DefectSpec] | None = None) -> LocoGroundTruth:
    """Merged mask and defect channels (with names and saturation areas) of one test sample, at the original
    resolution, for sPRO. ``config`` defaults to the object's ``defects_config.json``. A normal image gives an
    all-zero mask and no channels. Needs the official layout for anomalies."""
    if sample.label == 0 or sample.anomaly_type == "good":
        merged = np.asarray(merged_mask(sample)) > 0
        return LocoGroundTruth(merged, [])
    if not sample.defect_channels:
        raise UserError(f"sPRO needs the official LOCO ground truth (one folder of defect PNGs per image, plus "
                        f"{CONFIG_NAME}); {sample.image_path} has only a merged mask")
    if config is None:
        config = load_defects_config(Path(sample.image_path).parents[2] / CONFIG_NAME)
    channels: list[DefectChannel] = []
    merged = None
    for path in sample.defect_channels:
        raw = _read_channel(Path(path))
        values = np.unique(raw[raw > 0])
        if values.size == 0:
            warnings.warn(f"LOCO defect channel {path} has no defect pixels; skipped", stacklevel=2)
            continue
        if values.size > 1:
            raise UserError(f"LOCO defect channel {path} holds several pixel values {values.tolist()} "
                            f"(one defect instance per PNG expected)")
        value = int(values[0])
        if value not in config:
            raise UserError(f"LOCO defect channel {path}: pixel value {value} is not in {CONFIG_NAME}")
        spec = config[value]
        mask = raw > 0
        channels.append(DefectChannel(mask, spec.defect_name, value, spec.saturation_area(int(mask.sum())), path))
        merged = mask.copy() if merged is None else merged | mask
    if merged is None:
        merged = np.asarray(merged_mask(sample)) > 0
    return LocoGroundTruth(merged, channels)


def merge_loco_masks(root: str | os.PathLike, out: str | os.PathLike | None = None) -> int:
    """Write the merged layout SLSG expects: for every ``ground_truth/<type>/<stem>/`` folder, the OR of its channels
    as 0/255 ``ground_truth/<type>/<stem>_mask.png`` under ``out`` (default: beside the folders, which are kept).
    Returns the number of masks written."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--datapath: folder not found: {root}")
    out = Path(out) if out is not None else root
    count = 0
    for cls in list_dirs(root):
        gt_root = root / cls / "ground_truth"
        if not gt_root.is_dir():
            continue
        for kind in list_dirs(gt_root):
            for stem in list_dirs(gt_root / kind):
                channels = [str(p) for p in list_images(gt_root / kind / stem)]
                if not channels:
                    continue
                mask = merged_mask(Sample("", 1, kind, str(gt_root / kind / stem), channels))
                atomic_write_image(out / cls / "ground_truth" / kind / f"{stem}_mask.png", np.asarray(mask))
                count += 1
    return count
