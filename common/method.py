"""The one interface every method meets the rest of the toolkit at (see docs/CONTRACTS.md)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

EvaluateFn = Callable[["Method"], dict]


@runtime_checkable
class Method(Protocol):
    name: ClassVar[str]
    uses_fg_masks: bool  # whether fit() wants Sample.fg_mask_path filled

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device, cls_name: str) -> "Method": ...

    @staticmethod
    def checkpoint_dir(results_path: Path, dataset: str, cls_name: str) -> Path: ...

    def preprocessing(self, train: bool): ...

    def fit(self, train: Sequence, ckpt_dir: Path, evaluate: EvaluateFn | None) -> dict: ...

    def load(self, path: Path, which: str = "best") -> dict: ...

    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]: ...
