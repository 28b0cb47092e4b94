"""VisA: the raw layout read through its split file, and the conversion to the MVTec AD layout.

    <root>/split_csv/1cls.csv            columns object, split, label, image, mask (paths relative to <root>)
    <root>/<object>/Data/Images/{Normal,Anomaly}/*.JPG
    <root>/<object>/Data/Masks/Anomaly/*.png

Reference order (GLASS): train = the object's (train, normal) rows; test = its (test, anomaly) rows, then its
(test, normal) rows; CSV order within each. Anomalies get ``anomaly_type="bad"`` and normals ``"good"``, the folder
names of the converted layout, so both forms give the same sample lists.
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_image
from common.errors import UserError
from datasets.image_io import list_images, read_mask
from datasets.samples import Sample

SPLIT_FOLDER = "split_csv"
DEFAULT_SPLIT_FILE = "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": "good", "anomaly": "bad"}


def split_csv_path(root: str | os.PathLike, split_file: str = DEFAULT_SPLIT_FILE) -> Path:
    return Path(root) / SPLIT_FOLDER / split_file


def read_split_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a VisA split file (whitespace stripped); ``UserError`` naming the file on a bad header or label."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise UserError(f"VisA split file {path} lacks the column(s) {', '.join(missing)}")
            rows = []
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                if not any(row.values()):
                    continue
                if row["label"] not in LABELS:
                    raise UserError(f"{path}, line {line}: label must be normal or anomaly, got {row['label']!r}")
                if row["label"] == "anomaly" and not row["mask"]:
                    raise UserError(f"{path}, line {line}: anomaly row without a mask path")
                row["line"] = str(line)
                rows.append(row)
    except FileNotFoundError as exc:
        raise UserError(f"VisA split file not found: {path}") from exc
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read VisA split file {path}: {exc}") from exc
    return rows


def visa_classes(root: str | os.PathLike, split_file: str = DEFAULT_SPLIT_FILE) -> list[str]:
    """The objects named in the split file, sorted."""
    return sorted({row["object"] for row in read_split_csv(split_csv_path(root, split_file))})


def _existing(root: Path, relative: str, what: str, csv_path: Path, line: str) -> str:
    path = (root / relative).absolute()
    if not path.is_file():
        raise UserError(f"{what} listed in {csv_path} (line {line}) not found: {path}")
    return str(path)


def load_visa(root: str | os.PathLike, cls: str, split: str,
              split_file: str = DEFAULT_SPLIT_FILE) -> list[Sample]:
    """Samples of one VisA object from the split file (masks paired by row, not by position)."""
    root = Path(root)
    csv_path = split_csv_path(root, split_file)
    rows = [r for r in read_split_csv(csv_path) if r["object"] == cls]
    if split not in ("train", "test"):
        raise UserError(f"VisA has no {split!r} split (train, test)")
    chosen = [r for r in rows if r["split"] == split]
    if split == "train":
        if any(r["label"] == "anomaly" for r in chosen):
            warnings.warn(f"{csv_path}: anomalous rows in the train split of {cls} are ignored", stacklevel=2)
        chosen = [r for r in chosen if r["label"] == "normal"]
    else:
        chosen = [r for r in chosen if r["label"] == "anomaly"] + [r for r in chosen if r["label"] == "normal"]
    if not chosen:
        raise UserError(f"{csv_path} lists no {split} images for {cls!r}")
    samples = []
    for row in chosen:
        image = _existing(root, row["image"], "image", csv_path, row["line"])
        anomalous = row["label"] == "anomaly"
        mask = _existing(root, row["mask"], "mask", csv_path, row["line"]) if anomalous else None
        samples.append(Sample(image, int(anomalous), LABELS[row["label"]], mask))
    return samples


def prepare_visa(root: str | os.PathLike, out: str | os.PathLike, split_file: str = DEFAULT_SPLIT_FILE) -> int:
    """Convert raw VisA to the MVTec AD layout, as anomalib's ``Visa.prepare_data``: every row of the split file is
    copied to ``<out>/<object>/<split>/<good|bad>/<file name>``; every anomaly's mask is written binarised
    (non-zero -> 255) to ``<out>/<object>/ground_truth/bad/<image stem>.png``. ``<root>/fg_mask/`` is copied too.
    Files already present are kept (re-running resumes). Returns the number of rows converted."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise UserError(f"--datapath: folder not found: {root}")
    if out.resolve() == root.resolve():
        raise UserError(f"the converted VisA tree must go to another folder than {root}")
    csv_path = split_csv_path(root, split_file)
    rows = read_split_csv(csv_path)
    for row in rows:
        image = Path(_existing(root, row["image"], "image", csv_path, row["line"]))
        target = out / row["object"] / row["split"] / LABELS[row["label"]] / image.name
        if not target.exists():
            atomic_write_bytes(target, image.read_bytes())
        if row["label"] == "anomaly":
            mask_target = out / row["object"] / "ground_truth" / "bad" / f"{image.stem}.png"
            if not mask_target.exists():
                mask = read_mask(_existing(root, row["mask"], "mask", csv_path, row["line"]))
                atomic_write_image(mask_target, np.asarray(mask))
    fg_root = root / "fg_mask"
    if fg_root.is_dir():
        for folder in sorted(p for p in fg_root.iterdir() if p.is_dir()):
            for path in list_images(folder):
                target = out / "fg_mask" / folder.name / path.name
                if not target.exists():
                    atomic_write_bytes(target, path.read_bytes())
    return len(rows)

