"""The run-level settings shared by every method (what to run on, where outputs go), typed and validated once."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from common.errors import UserError

TEST_MODES = ("ckpt", "test", "predict", "export", "info")
SELECT_RULES = ("test", "val", "last")  # which epoch is kept (runner/selection.py)


@dataclass
class RunOptions:
    method: str = "glass"
    test: str = "ckpt"
    dataset: str = "mvtec"
    datapath: str | None = None
    augpath: str | None = None
    classes: list[str] | None = None
    results_path: str = "results"
    gpu: list[int] | None = None
    batch_size: int = 8
    num_workers: int = 0
    seed: int = 0
    gt_rule: str = "half"
    mask_pairing: str = "stem"
    save_maps: bool = False
    heatmaps: int = 1
    checkpoint: str | None = None
    input: str | None = None
    output: str = "results/predictions"
    format: str | None = None  # --test export: onnx | openvino (default: from --output's suffix)
    threshold: float | None = None
    holdout: float = 0.1
    retrain: bool = False
    threads: int = 0
    precision: str = "fp32"
    compile: int = 0
    cudnn_benchmark: int = 0
    max_eval_ram_mb: float = 1024.0
    select: str = "test"
    val_share: float = 0.2
    val_anomalies: int = 1
    method_given: bool = False  # --method was on the command line (predict then checks it against the checkpoint)

    def __post_init__(self) -> None:
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise UserError(f"--threshold must be a finite number, got {self.threshold}")
        if not math.isfinite(self.holdout) or not 0 < self.holdout < 1:
            raise UserError(f"--holdout must be a share in (0, 1), got {self.holdout}")
        if self.batch_size < 1:
            raise UserError(f"--batch_size must be >= 1, got {self.batch_size}")
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0 (0 = automatic), got {self.threads}")
        if not math.isfinite(self.max_eval_ram_mb) or self.max_eval_ram_mb < 0:
            raise UserError(f"--max_eval_ram_mb must be a finite number >= 0, got {self.max_eval_ram_mb}")
        if self.format not in (None, "onnx", "openvino"):
            raise UserError(f"--format: choose onnx or openvino, got {self.format!r}")
        if self.num_workers < 0:
            raise UserError(f"--num_workers must be >= 0, got {self.num_workers}")
        if self.select not in SELECT_RULES:
            raise UserError(f"--select: unknown rule {self.select!r}; choose from {', '.join(SELECT_RULES)}")
        if not math.isfinite(self.val_share) or not 0 < self.val_share < 1:
            raise UserError(f"--val_share must be a share in (0, 1), got {self.val_share}")
        if self.val_anomalies < 1:
            raise UserError(f"--val_anomalies must be >= 1, got {self.val_anomalies}")

    @classmethod
    def from_flags(cls, flags: dict) -> "RunOptions":
        return cls(**{f.name: flags[f.name] for f in fields(cls) if f.name in flags})

    @property
    def checkpoint_dataset(self) -> str:
        """MAD-man / MAD-sys are test-only: they evaluate the MVTec AD models (``mvtec_<class>``), as the reference."""
        return "mvtec" if self.dataset in ("mad-man", "mad-sys") else self.dataset
