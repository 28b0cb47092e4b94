"""GLASS foreground masks: ``<datapath>/fg_mask/<class>/<file name of the training image>``.

The reference finds the folder by cutting the image path at the first occurrence of the class name (wrong when the
dataset root contains that name); here the path is built directly from the data root, the class and the file name.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import torch

from common.errors import UserError
from datasets.image_io import read_mask
from datasets.preprocess import Preprocessing
from datasets.samples import Sample

FG_FOLDER = "fg_mask"


def fg_mask_path(datapath: str | os.PathLike, cls: str, image_path: str | os.PathLike) -> Path:
    """Where the foreground mask of one training image lives (same file name, extension included)."""
    return Path(datapath).absolute() / FG_FOLDER / cls / Path(image_path).name


def attach_fg_masks(samples: Sequence[Sample], datapath: str | os.PathLike, cls: str) -> list[Sample]:
    """Fill ``fg_mask_path`` of every sample; a missing mask raises ``UserError`` naming it (before any training)."""
    folder = Path(datapath).absolute() / FG_FOLDER / cls
    if not folder.is_dir():
        raise UserError(f"--fg 1 needs foreground masks, but the folder {folder} does not exist "
                        f"(one mask per training image, same file name; or run with --fg 0)")
    out = []
    missing = []
    for sample in samples:
        path = fg_mask_path(datapath, cls, sample.image_path)
        if not path.is_file():
            missing.append(path.name)
        out.append(Sample(sample.image_path, sample.label, sample.anomaly_type, sample.mask_path,
                          sample.defect_channels, str(path)))
    if missing:
        shown = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
        raise UserError(f"--fg 1: {len(missing)} training image(s) have no foreground mask in {folder}: {shown}")
    return out


def load_fg_mask(path: str | os.PathLike, preprocessing: Preprocessing) -> torch.Tensor:
    """Foreground mask -> float32 Tensor[1, H, W] in {0, 1}, on the grid of the preprocessed image.

    As the reference: channel 0, the image-identical resize and crop, then any value above zero is foreground
    (``ceil``). An all-zero result would make the GLASS synthesis loop forever: it becomes all ones with a warning
    naming the file."""
    resized = preprocessing.mask(read_mask(path, channel=0))
    fg = (resized > 0).to(torch.float32)
    if not bool(fg.any()):
        warnings.warn(f"foreground mask {path} is empty after resizing; using the whole image as foreground",
                      stacklevel=2)
        return torch.ones_like(fg)
    return fg



def generate_fg_masks(dataset: str, datapath: str | os.PathLike, classes: Sequence[str] | None = None,
                      kind: str = "auto", log=print) -> dict[str, str]:
    """Write ``<datapath>/fg_mask/<class>/<file>`` for every training image of ``classes`` (default: all) by the
    binarisation of ``datasets.fgmask``; returns {class: "object"|"texture"}. Masks are 0/255 PNG data stored under
    the training image's own file name (a ``.jpg`` name holds PNG data: lossless, and readers go by content)."""
    import io

    import numpy as np
    from PIL import Image

    from common.atomic import atomic_write_bytes
    from datasets.fgmask import KINDS, class_masks
    from datasets.image_io import read_rgb
    from datasets.registry import list_classes, load_samples

    if kind not in KINDS:
        raise UserError(f"--kind: unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    available = list_classes(dataset, datapath)
    chosen = list(classes) if classes else available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise UserError(f"--classes: unknown class(es) {', '.join(unknown)} under {datapath}; "
                        f"available: {', '.join(available)}")
    kinds = {}
    for cls in chosen:
        samples = load_samples(dataset, datapath, cls, "train")
        images = [np.asarray(read_rgb(s.image_path)) for s in samples]
        masks, decision = class_masks(images, kind)  # type: ignore[arg-type]
        for sample, mask in zip(samples, masks):
            buffer = io.BytesIO()
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
            atomic_write_bytes(fg_mask_path(datapath, cls, sample.image_path), buffer.getvalue())
        kinds[cls] = decision.kind
        log(f"{cls}: {decision.kind} ({decision.reason}); {len(masks)} masks in "
            f"{Path(datapath).absolute() / FG_FOLDER / cls}")
    return kinds
