"""``--dataset`` names -> loaders: the class list and the samples of one class and split."""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import UserError
from datasets.fg import attach_fg_masks
from datasets.folder import folder_classes, load_folder
from datasets.image_io import list_dirs
from datasets.loco import load_loco
from datasets.mvtec_layout import layout_classes, load_mvtec_layout
from datasets.pairing import PAIRINGS
from datasets.samples import Sample
from datasets.visa import load_visa, split_csv_path, visa_classes

DATASETS = ("mvtec", "visa", "mpdd", "wfdd", "mad-man", "mad-sys", "loco", "folder")
MVTEC_LIKE = ("mvtec", "mpdd", "wfdd", "mad-man", "mad-sys")
TEST_ONLY = ("mad-man", "mad-sys")
SPLITS = ("train", "test", "validation")
SUBSET_HINT = {"mad-man": "Person_1", "mad-sys": "Beta_0.1"}


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise UserError(f"--dataset: unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")


def _check_root(datapath: str | os.PathLike | None) -> Path:
    if datapath is None or str(datapath) == "":
        raise UserError("--datapath is required (the dataset root)")
    root = Path(datapath)
    if not root.is_dir():
        raise UserError(f"--datapath: folder not found: {root}")
    return root


def _visa_uses_csv(root: Path) -> bool:
    """Raw VisA (split file present) or its MVTec-layout conversion (class folders with train/test)."""
    return split_csv_path(root).is_file() or not layout_classes(root)


def list_classes(dataset: str, datapath: str | os.PathLike) -> list[str]:
    """The classes available under ``datapath`` (sorted). ``UserError`` when there are none."""
    _check_dataset(dataset)
    root = _check_root(datapath)
    if dataset == "folder":
        return folder_classes(root)
    if dataset == "visa" and _visa_uses_csv(root):
        return visa_classes(root)
    splits = ("test",) if dataset in TEST_ONLY else ("train", "test")
    classes = layout_classes(root, splits)
    if classes:
        return classes
    hint = ""
    if dataset in SUBSET_HINT:
        subsets = list_dirs(root)
        hint = (f"; {dataset} is split into subsets: give one of them, e.g. --datapath {root / subsets[0]}"
                if subsets else f"; give a subset folder such as {SUBSET_HINT[dataset]}")
    raise UserError(f"--datapath {root}: no class folders (<class>/train or <class>/test) found for "
                    f"--dataset {dataset}{hint}")


def load_samples(dataset: str, datapath: str | os.PathLike, cls: str, split: str, *, mask_pairing: str = "stem",
                 fg: bool = False) -> list[Sample]:
    """The samples of one class and split, in the reference order (types sorted, files sorted; VisA: anomalies,
    then normals, in CSV order). ``fg=True`` fills ``fg_mask_path`` of training samples (a missing mask is an
    error). Every problem with the data raises ``UserError`` naming the flag, folder or file."""
    _check_dataset(dataset)
    root = _check_root(datapath)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if mask_pairing not in PAIRINGS:
        raise UserError(f"--mask_pairing: unknown mode {mask_pairing!r}; choose from {', '.join(PAIRINGS)}")
    available = list_classes(dataset, root)
    if cls not in available:
        raise UserError(f"--classes: unknown class {cls!r} under {root}; available: {', '.join(available)}")
    if dataset == "folder":
        samples = load_folder(root, cls, split, mask_pairing=mask_pairing)
    elif dataset == "visa" and _visa_uses_csv(root):
        samples = load_visa(root, cls, split)
    elif dataset == "loco":
        samples = load_loco(root, cls, split, mask_pairing=mask_pairing)
    else:
        samples = load_mvtec_layout(root, cls, split, mask_pairing=mask_pairing, dataset=dataset,
                                    test_only=dataset in TEST_ONLY)
    if fg and split == "train":
        samples = attach_fg_masks(samples, root, cls)
    return samples
