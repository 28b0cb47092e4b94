"""Optional ``torch.compile`` (``--compile 1``) that falls back to eager execution, with a warning, if it fails."""
from __future__ import annotations

import warnings
from typing import Callable

_enabled = False


def set_compile(enabled: bool) -> None:
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


class CompiledOrEager:
    """Calls ``torch.compile(fn)``; if compiling (or running the compiled code) raises, warns once and uses ``fn``.

    Compilation happens at the first call; a failure there is caught before the call's result is used. The
    compiled function computes the same values up to float rounding (the fused kernels may reorder sums)."""

    def __init__(self, fn: Callable, name: str) -> None:
        self.fn, self.name = fn, name
        self.compiled: Callable | None = None
        try:
            import torch

            self.compiled = torch.compile(fn, dynamic=True)
        except Exception as error:  # noqa: BLE001 - any failure means: run eagerly
            self._fall_back(error)

    def _fall_back(self, error: BaseException) -> None:
        warnings.warn(f"--compile 1: torch.compile of {self.name} failed ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); running it uncompiled", stacklevel=3)
        self.compiled = None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001
                self._fall_back(error)
        return self.fn(*args, **kwargs)


def maybe_compile(fn: Callable, name: str) -> Callable:
    """``fn`` itself unless ``--compile 1``; then a :class:`CompiledOrEager` wrapper."""
    return CompiledOrEager(fn, name) if _enabled else fn
