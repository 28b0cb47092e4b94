"""SLSG training batches: ``batch_size`` jittered normals + their simulated anomalies, drawn per step.

Every draw for step ``s`` comes from ``np.random.default_rng([seed, s])`` (image choice) and
``default_rng([seed, s, i])`` (sample ``i``), so a resumed run draws the same batches as an uninterrupted one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slsg import imageops
from slsg.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from slsg.simulate import SLSGSimulator

NORMAL_JITTER = (0.1, 0.1)  # ColorJitter(brightness=0.1, saturation=0.1) on every normal image


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB (H,W,3) images -> (B,3,H,W) float32, ImageNet-normalised."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def step_indices(n_images: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Which training images step ``step`` uses (without replacement when there are enough)."""
    rng = np.random.default_rng([seed, step])
    return rng.choice(n_images, batch_size, replace=n_images < batch_size)


def make_batch(images: Sequence[np.ndarray], simulator: SLSGSimulator, batch_size: int, seed: int,
               step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (x (2B,3,H,W): B normals then their B anomalies, target (2B,1,H,W): zeros then the masks)."""
    normals, augs, masks = [], [], []
    for i, index in enumerate(step_indices(len(images), batch_size, seed, step)):
        rng = np.random.default_rng([seed, step, i])
        normal = imageops.color_jitter(images[int(index)], rng, *NORMAL_JITTER)
        sim = simulator(normal, rng)
        normals.append(normal)
        augs.append(sim.aug)
        masks.append(sim.mask)
    x = to_tensor(normals + augs)
    h, w = masks[0].shape
    target = torch.cat([torch.zeros(batch_size, 1, h, w), torch.from_numpy(np.stack(masks))[:, None]])
    return x, target
