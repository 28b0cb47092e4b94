"""TensorBoard event files as the GLASS reference writes them: ``<checkpoint folder>/tb/``.

Tags and cadence follow the reference: per training iteration ``loss``, ``p_true``, ``p_fake``, ``r_t``, ``r_g``,
``r_f`` (SLSG: ``loss``, ``lr``) at the global iteration count (0-based, continued over a resume); per evaluation
``i-auroc`` and ``p-auroc`` at the epoch (SLSG: the step). The toolkit adds the final evaluation of the best and the
last checkpoint (``best/i-auroc``, ``best/p-auroc``, ``best/au-pro`` at the best epoch, ``last/...`` at the last one).

Per-iteration values are kept as detached tensors (or floats) and converted with one host copy per tag when the epoch
is flushed, so logging adds no device synchronisation inside the iteration loop.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch

TB_FOLDER = "tb"
EVAL_TAGS = {"image_auroc": "i-auroc", "pixel_auroc": "p-auroc"}
FINAL_TAGS = {"image_auroc": "i-auroc", "pixel_auroc": "p-auroc", "au_pro": "au-pro"}


def tb_folder(checkpoint: Path) -> Path:
    """GLASS: ``<results>/models/backbone_0/<dataset>_<class>/tb``; a checkpoint file (SLSG ``<name>.tch``):
    ``<its folder>/<name>/tb``."""
    checkpoint = Path(checkpoint)
    return (checkpoint.with_suffix("") if checkpoint.suffix else checkpoint) / TB_FOLDER


class TrainingLog:
    """A lazily opened ``SummaryWriter``; ``enabled=False`` makes every call a no-op (``--tensorboard 0``)."""

    def __init__(self, folder: Path, enabled: bool = True, start_iteration: int = 0) -> None:
        self.folder, self.enabled = Path(folder), bool(enabled)
        self.iteration_count = int(start_iteration)
        self._pending: dict[str, list[tuple[int, torch.Tensor | float]]] = {}
        self._writer = None

    def _open(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.folder.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.folder))
        return self._writer

    def iteration(self, values: Mapping[str, torch.Tensor | float]) -> None:
        """One training iteration's scalars (detached 0-d tensors or floats); the global step advances by one."""
        if self.enabled:
            for tag, value in values.items():
                self._pending.setdefault(tag, []).append((self.iteration_count, value))
        self.iteration_count += 1

    def evaluation(self, step: int, metrics: Mapping[str, float], tags: Mapping[str, str] = EVAL_TAGS,
                   prefix: str = "") -> None:
        if not self.enabled:
            return
        writer = self._open()
        for key, tag in tags.items():
            value = metrics.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                writer.add_scalar(prefix + tag, float(value), int(step))

    def flush(self) -> None:
        """Write the pending iteration scalars (one host copy per tag) and flush the event file."""
        if not self.enabled or (not self._pending and self._writer is None):
            return
        writer = self._open()
        for tag, entries in self._pending.items():
            values = [v for _, v in entries]
            if all(isinstance(v, torch.Tensor) for v in values):
                numbers = torch.stack([v.detach().reshape(()) for v in values]).float().cpu().tolist()
            else:
                numbers = [float(v) for v in values]
            for (step, _), number in zip(entries, numbers):
                writer.add_scalar(tag, number, step)
        self._pending.clear()
        writer.flush()

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def log_final(checkpoint: Path, row: Mapping[str, float | None], enabled: bool = True) -> None:
    """The final evaluation of one class (a results.csv row): best-epoch and last-epoch metrics, at their epochs."""
    folder = tb_folder(checkpoint)
    if not enabled or not folder.is_dir():
        return
    log = TrainingLog(folder)
    for prefix, epoch_key, keys in (("best/", "best_epoch", FINAL_TAGS),
                                    ("last/", "last_epoch", {f"last_{k}": t for k, t in FINAL_TAGS.items()})):
        epoch = row.get(epoch_key)
        if epoch is not None and math.isfinite(float(epoch)):
            log.evaluation(int(epoch), row, keys, prefix)
    log.close()
