"""A tiny GLASS network and LAS dataset built in memory (random conv backbone, stub synthesizer), for unit tests of
the training loop that need no weights, images or texture folder."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from glass.network import GlassNet
from glass.trainer import CentreCache, LasDataset

SIZE, STRIDE = 32, 4


class TinyBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 8, STRIDE, STRIDE)
        self.second = nn.Conv2d(8, 16, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = torch.relu(self.first(x))
        return [a, torch.relu(self.second(a))]


class Images(Dataset):
    def __init__(self, count: int = 8) -> None:
        self.images = torch.randn(count, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "fg_mask": torch.ones(SIZE, SIZE), "index": index}


def stub_synthesizer(image: torch.Tensor, fg, rng: np.random.Generator) -> dict:
    grid = SIZE // STRIDE
    mask = torch.from_numpy((rng.random((grid, grid)) < 0.3).astype(np.float32))
    big = mask.repeat_interleave(STRIDE, 0).repeat_interleave(STRIDE, 1)
    aug = image + big * torch.from_numpy(rng.standard_normal(image.shape).astype(np.float32))
    return {"aug": aug, "mask_s": mask}


def tiny_trainer_inputs(seed: int = 0) -> tuple[GlassNet, LasDataset, CentreCache]:
    torch.manual_seed(seed)
    net = GlassNet(TinyBackbone().eval(), 16, 16, 3, 1, 2, 32)
    images = Images()
    return net, LasDataset(images, stub_synthesizer, seed, False), CentreCache(net, images, 4, 0, torch.device("cpu"))
