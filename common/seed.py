"""Seeding, as the reference's fix_seeds (python, numpy, torch, cuda)."""
from __future__ import annotations

import random

import numpy as np
import torch


def fix_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
