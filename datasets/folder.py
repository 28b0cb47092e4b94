"""A user's own data: a folder of good images, optionally with a test set.

    nested: <root>/<class>/train/good/*        required
            <root>/<class>/test/<type>/*       optional (good + anomaly types)
            <root>/<class>/ground_truth/<type>/<stem>_mask.png   optional (image metrics only without it)
    flat:   <root>/*.png                       one class named after <root>, training images only
"""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import UserError
from datasets.image_io import list_images
from datasets.mvtec_layout import good_samples, layout_classes, test_samples
from datasets.samples import Sample


def is_flat(root: str | os.PathLike) -> bool:
    """A flat folder: images directly in ``root`` and no ``<class>/train`` sub-folder."""
    root = Path(root)
    return not layout_classes(root, ("train",)) and bool(list_images(root))


def folder_classes(root: str | os.PathLike) -> list[str]:
    root = Path(root)
    if is_flat(root):
        return [root.absolute().name]
    classes = layout_classes(root, ("train",))
    if not classes:
        raise UserError(f"--datapath {root}: no images and no <class>/train/good folder found "
                        f"(give a folder of good images, or <root>/<class>/train/good/)")
    return classes


def load_folder(root: str | os.PathLike, cls: str, split: str, *, mask_pairing: str = "stem") -> list[Sample]:
    """Samples of one class of a user folder. A flat folder has only a train split; without ``test/`` the test
    split raises ``UserError`` (the runner then trains and saves without metrics)."""
    root = Path(root).absolute()
    if is_flat(root):
        if split == "train":
            return good_samples(root, "train")
        raise UserError(f"{root} is a flat folder of training images: it has no {split} split")
    class_dir = root / cls
    if split == "train":
        return good_samples(class_dir / "train" / "good", "train")
    if split == "test":
        if not (class_dir / "test").is_dir():
            raise UserError(f"no test folder for {cls!r}: {class_dir / 'test'}")
        return test_samples(class_dir, mask_pairing, gt_required=False)
    if split == "validation":
        return good_samples(class_dir / "validation" / "good", "validation")
    raise UserError(f"unknown split {split!r}; choose from train, test, validation")
