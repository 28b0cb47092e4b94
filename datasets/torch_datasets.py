"""torch ``Dataset`` views of sample lists: preprocessed test images with binarised ground truth, and training
images with their foreground masks."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from common.errors import UserError
from datasets.fg import load_fg_mask
from datasets.image_io import read_mask, read_mask_float, read_rgb
from datasets.loco import merged_mask
from datasets.preprocess import GT_RULES, Preprocessing, binarize_gt
from datasets.samples import Sample


def ground_truth(sample: Sample, preprocessing: Preprocessing, rule: str = "half",
                 image_size: tuple[int, int] | None = None) -> torch.Tensor:
    """The binarised ground truth of one sample on the preprocessed grid: float32 Tensor[1, H, W] in {0, 1}; zeros
    when it has none. ``image_size`` (W, H) of the source image, to check that the mask matches it.

    ``nonzero`` resizes the mask in float mode, as the VisA reference (``convert("F")``): every pixel the resize
    touches at all counts; the other rules resize the 8-bit mask, as the MVTec reference (``convert("L")``)."""
    if sample.mask_path is None:
        return torch.zeros((1, *preprocessing.output_shape), dtype=torch.float32)
    if sample.defect_channels or Path(sample.mask_path).is_dir():
        if not sample.defect_channels:
            raise UserError(f"ground-truth folder {sample.mask_path} lists no defect channels")
        pil = merged_mask(sample)
        if rule == "nonzero":
            pil = Image.fromarray((np.asarray(pil) > 0).astype(np.float32), mode="F")
    else:
        pil = read_mask_float(sample.mask_path) if rule == "nonzero" else read_mask(sample.mask_path)
    if image_size is not None and pil.size != image_size:
        raise UserError(f"mask {sample.mask_path} is {pil.size[0]}x{pil.size[1]} px but its image "
                        f"{sample.image_path} is {image_size[0]}x{image_size[1]}")
    return binarize_gt(preprocessing.mask(pil), rule)


class TestDataset(Dataset):
    """Test images for evaluation. Items: ``image`` float32 (3, H, W) normalised, ``mask`` float32 (1, H, W) in
    {0, 1} (binarised by ``gt_rule``), ``label`` int, ``image_path`` (relative to ``root`` when given),
    ``anomaly_type`` str."""

    __test__ = False  # not a pytest test class

    def __init__(self, samples: Sequence[Sample], preprocessing: Preprocessing, gt_rule: str = "half",
                 root: str | os.PathLike | None = None):
        if gt_rule not in GT_RULES:
            raise UserError(f"--gt_rule: unknown rule {gt_rule!r}; choose from {', '.join(GT_RULES)}")
        self.samples = list(samples)
        self.preprocessing = preprocessing
        self.gt_rule = gt_rule
        self.root = Path(root).absolute() if root is not None else None

    def __len__(self) -> int:
        return len(self.samples)

    def relative_path(self, sample: Sample) -> str:
        if self.root is None:
            return sample.image_path
        try:
            return Path(sample.image_path).relative_to(self.root).as_posix()
        except ValueError:
            return sample.image_path

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        pil = read_rgb(sample.image_path)
        return {
            "image": self.preprocessing.image(pil),
            "mask": ground_truth(sample, self.preprocessing, self.gt_rule, pil.size),
            "label": int(sample.label),
            "image_path": self.relative_path(sample),
            "anomaly_type": sample.anomaly_type,
        }


class TrainImages(Dataset):
    """Training images. Items: ``image`` float32 (3, H, W) normalised, ``image_path`` (absolute), ``fg_mask``
    float32 (1, H, W) in {0, 1} (ones without a foreground mask), ``index`` int."""

    def __init__(self, samples: Sequence[Sample], preprocessing: Preprocessing):
        self.samples = list(samples)
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image = self.preprocessing.image(read_rgb(sample.image_path))
        if sample.fg_mask_path:
            fg = load_fg_mask(sample.fg_mask_path, self.preprocessing)
        else:
            fg = torch.ones((1, *image.shape[-2:]), dtype=torch.float32)
        return {"image": image, "image_path": sample.image_path, "fg_mask": fg, "index": index}
