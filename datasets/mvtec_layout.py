"""The MVTec AD folder layout, shared by MVTec AD, MPDD, WFDD, MAD-man, MAD-sys, converted VisA and user folders.

    <root>/<class>/train/good/*.png
    <root>/<class>/test/<type>/*.png                 (type "good" = normal)
    <root>/<class>/ground_truth/<type>/<stem>_mask.png
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from common.errors import UserError
from datasets.image_io import list_dirs, list_images
from datasets.pairing import pair_masks
from datasets.samples import Sample

NOT_CLASSES = ("fg_mask", "split_csv", "ground_truth")


def layout_classes(root: str | os.PathLike, splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Sub-folders of ``root`` that hold at least one of ``splits`` (sorted)."""
    root = Path(root)
    return [name for name in list_dirs(root)
            if name not in NOT_CLASSES and any((root / name / s).is_dir() for s in splits)]


def good_samples(folder: Path, what: str) -> list[Sample]:
    """Every image of a folder of normal images; ``UserError`` if the folder is missing or empty."""
    if not folder.is_dir():
        raise UserError(f"{what} folder not found: {folder}")
    images = list_images(folder)
    if not images:
        raise UserError(f"{what} folder {folder} holds no images (accepted: .png .jpg .jpeg .bmp .tif .tiff)")
    return [Sample(str(p.absolute()), 0, "good", None) for p in images]


def test_samples(class_dir: Path, mask_pairing: str = "stem", gt_required: bool = True) -> list[Sample]:
    """The test split: types sorted, files sorted; masks from ``ground_truth/<type>/``.

    Without a ``ground_truth`` folder and ``gt_required=False`` anomalies get ``mask_path=None`` (image metrics
    only; with ``gt_required=True`` a warning says so). A ``ground_truth`` folder that lacks one anomaly type's
    sub-folder, or masks that cannot be paired, raise ``UserError`` naming the folder."""
    test_dir = class_dir / "test"
    if not test_dir.is_dir():
        raise UserError(f"test folder not found: {test_dir}")
    gt_root = class_dir / "ground_truth"
    samples: list[Sample] = []
    for kind in list_dirs(test_dir):
        images = list_images(test_dir / kind)
        if kind == "good":
            samples += [Sample(str(p.absolute()), 0, kind, None) for p in images]
            continue
        if not images:
            continue
        if not gt_root.is_dir():
            if gt_required:
                warnings.warn(f"no ground_truth folder in {class_dir}: pixel metrics will be unavailable",
                              stacklevel=3)
            samples += [Sample(str(p.absolute()), 1, kind, None) for p in images]
            continue
        gt_dir = gt_root / kind
        if not gt_dir.is_dir():
            raise UserError(f"ground-truth folder missing for anomaly type {kind!r}: {gt_dir}")
        masks = pair_masks(images, list_images(gt_dir), gt_dir, mask_pairing)
        samples += [Sample(str(p.absolute()), 1, kind, str(m.absolute())) for p, m in zip(images, masks)]
    if not samples:
        raise UserError(f"test folder {test_dir} holds no images")
    return samples


def load_mvtec_layout(root: str | os.PathLike, cls: str, split: str, *, mask_pairing: str = "stem",
                      dataset: str = "mvtec", test_only: bool = False, gt_required: bool = True) -> list[Sample]:
    """Samples of one class and split. ``test_only`` datasets (MAD-man, MAD-sys) have no train split."""
    class_dir = Path(root).absolute() / cls
    if split == "test":
        return test_samples(class_dir, mask_pairing, gt_required)
    if test_only:
        raise UserError(f"{dataset} is a test-only dataset (no train split): evaluate a model trained on MVTec AD, "
                        f"e.g. --dataset {dataset} --test test --checkpoint <results>/models/backbone_0/mvtec_{cls}")
    if split == "train":
        return good_samples(class_dir / "train" / "good", "train")
    if split == "validation":
        return good_samples(class_dir / "validation" / "good", "validation")
    raise UserError(f"unknown split {split!r}; choose from train, test, validation")
