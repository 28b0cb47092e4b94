"""Opt-in mixed precision (``--precision bf16|fp16|fp32``; fp32, the reference, by default).

Only the frozen backbone's forward runs under ``torch.autocast``: it is most of the arithmetic, it has no gradients
(fp16 needs no loss scaling there), and its features are cast back to float32 before anything trainable (the
projection, the GAS ascent, the discriminator, the losses) and before the maps, which therefore keep full float32
resolution for the exact metrics. bf16 autocast also runs on the CPU; fp16 is for CUDA (on the CPU it is tried
and, where the CPU build lacks it, falls back to fp32 with a warning).
"""
from __future__ import annotations

import contextlib
import warnings

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_current = "fp32"


def set_precision(name: str) -> None:
    global _current
    if name not in DTYPES:
        from common.errors import UserError

        raise UserError(f"--precision: unknown value {name!r}; choose from {', '.join(DTYPES)}")
    _current = name


def current() -> str:
    return _current


def autocast(device: torch.device | str, name: str | None = None):
    """A context: ``torch.autocast`` for the chosen lower precision on that device type, else nothing."""
    dtype = DTYPES[_current if name is None else name]
    if dtype is None:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    try:
        return torch.autocast(device_type=device_type, dtype=dtype)
    except (RuntimeError, ValueError) as error:  # e.g. a dtype this device's autocast does not support
        warnings.warn(f"--precision {_current}: autocast unavailable on {device_type} ({error}); using fp32",
                      stacklevel=2)
        return contextlib.nullcontext()
