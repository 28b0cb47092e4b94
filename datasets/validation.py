"""A validation set without test labels: held-out good training images plus seeded synthetic anomalies.

``split_for_validation`` holds out a share of the good training images; ``SyntheticValidation`` is a
``TestDataset``-compatible set (same item keys) of those images (label 0, empty mask) and, per image, ``per_image``
anomalous copies made by a method's own image-space synthesis (label 1, its mask). Everything is drawn from
``numpy.random.default_rng([seed, index, copy])`` and built once, so every epoch is scored on the same images.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from common.errors import UserError
from datasets.preprocess import Preprocessing
from datasets.samples import Sample

# (sample, preprocessing, rng) -> (normalised image Tensor[3, H, W], mask Tensor[1, H, W] in {0, 1})
AnomalyMaker = Callable[[Sample, Preprocessing, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]
MIN_HELD = 2


def split_for_validation(samples: Sequence[Sample], share: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(training, held out): a seeded ``share`` of the images (at least 2), both in the original order."""
    if not 0 < share < 1:
        raise UserError(f"--val_share must be in (0, 1), got {share}")
    n = len(samples)
    n_held = max(MIN_HELD, int(round(share * n)))
    if n - n_held < 1:
        raise UserError(f"--select val needs more good training images: {n} cannot give {n_held} for validation "
                        f"and still leave some to train on (use --select last)")
    order = np.random.default_rng([seed, 104729]).permutation(n)
    held = set(order[:n_held].tolist())
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]


class SyntheticValidation(Dataset):
    """Items as ``TestDataset``: ``image``, ``mask``, ``label``, ``image_path``, ``anomaly_type``."""

    def __init__(self, held: Sequence[Sample], preprocessing: Preprocessing, make_anomaly: AnomalyMaker,
                 seed: int, per_image: int = 1, normal_image: Callable[[Sample], torch.Tensor] | None = None):
        from datasets.image_io import read_rgb

        shape = (1, *preprocessing.output_shape)
        self.items: list[dict[str, Any]] = []
        for index, sample in enumerate(held):
            image = normal_image(sample) if normal_image else preprocessing.image(read_rgb(sample.image_path))
            self.items.append({"image": image, "mask": torch.zeros(shape), "label": 0,
                               "image_path": sample.image_path, "anomaly_type": "good"})
            for copy in range(per_image):
                rng = np.random.default_rng([seed, index, copy])
                aug, mask = make_anomaly(sample, preprocessing, rng)
                self.items.append({"image": aug.to(torch.float32), "mask": (mask > 0.5).to(torch.float32).view(shape),
                                   "label": 1, "image_path": f"{sample.image_path}#synthetic{copy}",
                                   "anomaly_type": "synthetic"})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]
