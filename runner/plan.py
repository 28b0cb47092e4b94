"""What each class will run on, listed and validated before any training starts."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import datasets
from common.errors import UserError
from runner.options import RunOptions


@dataclass
class ClassPlan:
    name: str
    train: list
    test: list
    held_out: list  # good training images kept for the threshold when there is no test set
    validation: list = field(default_factory=list)  # the dataset's own validation/good images (--select val)


def plan_class(options: RunOptions, method_cls, config, cls_name: str) -> ClassPlan:
    test: list = []
    try:
        test = datasets.load_samples(options.dataset, options.datapath, cls_name, "test",
                                     mask_pairing=options.mask_pairing)
    except UserError:
        if options.dataset != "folder":
            raise
    train, held_out = [], []
    if options.test == "ckpt":
        fg = method_cls.wants_fg_masks(config, options.dataset, cls_name)
        train = datasets.load_samples(options.dataset, options.datapath, cls_name, "train", fg=fg)
        if not test and len(train) >= 4:
            train, held_out = split_held_out(train, options.holdout, options.seed)
    validation = own_validation(options, cls_name) if options.test == "ckpt" and options.select == "val" else []
    return ClassPlan(cls_name, train, test, held_out, validation)


def own_validation(options: RunOptions, cls_name: str) -> list:
    """The good images of the dataset's own ``<class>/validation/good`` split (MVTec LOCO ships one; any
    MVTec-layout or folder tree may add one); empty when the layout has none."""
    try:
        return datasets.load_samples(options.dataset, options.datapath, cls_name, "validation")
    except UserError:  # no such folder (or no images in it): --select val holds out training images instead
        return []


def split_held_out(train: list, share: float, seed: int) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(train))
    n_held = max(2, int(round(share * len(train))))
    held_out = [train[i] for i in sorted(order[:n_held])]
    return [train[i] for i in sorted(order[n_held:])], held_out


def selected_classes(options: RunOptions) -> list[str]:
    available = datasets.list_classes(options.dataset, options.datapath)
    classes = options.classes or available
    if options.checkpoint and len(classes) != 1:
        raise UserError("--checkpoint names one model: give exactly one --classes")
    unknown = [c for c in classes if c not in available]
    if unknown:
        raise UserError(f"--classes: unknown class(es) {', '.join(unknown)} under {options.datapath}; "
                        f"available: {', '.join(available)}")
    return classes
