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


_cudnn_benchmark = False


def set_cudnn_benchmark(enabled: bool) -> None:
    """``--cudnn_benchmark 1``: let cuDNN autotune its convolution algorithms (the reference's ``fix_seeds`` sets
    ``deterministic=True, benchmark=False``, which stays the default). Applied by ``apply_cuda_settings``."""
    global _cudnn_benchmark
    _cudnn_benchmark = bool(enabled)


def apply_cuda_settings(device: torch.device) -> None:
    """After ``fix_seeds`` (which resets cuDNN to the reference's deterministic settings): the opt-in autotuning."""
    if device.type == "cuda" and _cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy that does not wait for the GPU (the tensor should come from pinned memory: a
    ``pin_memory=True`` DataLoader); on the CPU a no-op."""
    return tensor.to(device, non_blocking=device.type == "cuda")


def pinned(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Page-locked copy of a CPU tensor when it is going to a CUDA device (so that ``to_device`` is asynchronous)."""
    return tensor.pin_memory() if device.type == "cuda" and not tensor.is_pinned() else tensor


SYNC_FREE_ON_CPU = False  # tests set this to run the CUDA (synchronisation-free) code paths on the CPU


def avoid_host_sync(tensor: torch.Tensor) -> bool:
    """Whether code should avoid operations that wait for the device (``bool(t)``, ``float(t)``, boolean indexing):
    on CUDA yes (each one stalls the pipeline); on the CPU they cost nothing and keep the reference's exact order."""
    return tensor.is_cuda or SYNC_FREE_ON_CPU
