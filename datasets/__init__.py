"""Dataset loaders, preprocessing and torch datasets (see docs/datasets.md).

The synthesis (``datasets.synthesis``) and demo-data (``datasets.demo``) modules are imported on first use, so a
problem in either never breaks loading data.
"""
from __future__ import annotations

import importlib
from typing import Any

from datasets.fg import attach_fg_masks, fg_mask_path, load_fg_mask
from datasets.image_io import IMAGE_EXTENSIONS, list_images, read_mask, read_rgb
from datasets.loco import LocoGroundTruth, load_defects_config, loco_ground_truth, merge_loco_masks, merged_mask
from datasets.preprocess import (GT_RULES, IMAGENET_MEAN, IMAGENET_STD, Preprocessing, binarize_gt,
                                 glass_preprocessing, slsg_preprocessing)
from datasets.registry import DATASETS, list_classes, load_samples
from datasets.samples import Sample
from datasets.torch_datasets import TestDataset, TrainImages, ground_truth
from datasets.visa import prepare_visa

_LAZY = {"generate_demo": "datasets.demo", "generate_loco_demo": "datasets.demo", "DemoData": "datasets.demo",
         "GlassSynthesizer": "datasets.synthesis"}

__all__ = ["DATASETS", "GT_RULES", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "LocoGroundTruth",
           "Preprocessing", "Sample", "TestDataset", "TrainImages", "attach_fg_masks", "binarize_gt", "fg_mask_path",
           "glass_preprocessing", "ground_truth", "list_classes", "list_images", "load_defects_config",
           "load_fg_mask", "load_samples", "loco_ground_truth", "merge_loco_masks", "merged_mask", "prepare_visa",
           "read_mask", "read_rgb", "slsg_preprocessing", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'datasets' has no attribute {name!r}")
