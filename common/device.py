"""Device selection: a GPU when asked for and present, the CPU otherwise."""
from __future__ import annotations

import warnings
from typing import Sequence

import torch


def pick_device(gpu: Sequence[int] | int | None) -> torch.device:
    """``--gpu`` as the reference takes it (a list, the first entry used); ``-1`` or no CUDA selects the CPU."""
    if isinstance(gpu, (list, tuple)):
        gpu = gpu[0] if gpu else None
    if gpu is None or int(gpu) < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        warnings.warn(f"--gpu {gpu}: no CUDA device is available, running on the CPU", stacklevel=2)
        return torch.device("cpu")
    if int(gpu) >= torch.cuda.device_count():
        from common.errors import UserError

        raise UserError(f"--gpu {gpu}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device(f"cuda:{int(gpu)}")
