"""The one interface every method meets the rest of the toolkit at (see docs/CONTRACTS.md).

A method is built from its typed config (``config_class``), never from command-line flags; the application
(``runner/``) builds that config at the CLI edge and picks the class from its registry.
"""
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
    config_class: ClassVar[type]  # a dataclass with from_flags(dict), to_dict() and MODEL_FIELDS
    needs_augpath: ClassVar[bool]  # whether training needs a texture folder

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...

    @classmethod
    def build(cls, config, device: torch.device, cls_name: str, dataset: str = "mvtec",
              augpath: str | None = None) -> "Method": ...

    @staticmethod
    def checkpoint_path(results_path: Path, dataset: str, cls_name: str) -> Path: ...

    @staticmethod
    def wants_fg_masks(config, dataset: str, cls_name: str) -> bool: ...

    def preprocessing(self, train: bool): ...

    def fit(self, train: Sequence, ckpt_path: Path, evaluate: EvaluateFn | None, retrain: bool = False) -> dict: ...

    def load(self, path: Path, which: str = "best") -> dict: ...

    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]: ...
