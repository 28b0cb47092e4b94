"""The SLSG training loop: SGD (momentum 0.9, weight decay 3e-5), one cosine decay over ``steps``, loss on
``batch_size`` normals + ``batch_size`` simulated anomalies per step.

Checkpoints: ``best`` is a plain whole-network state dict (the released ``<class>.tch`` format); ``last`` holds the
full training state (model, optimiser, step, best record) and is rewritten atomically every ``save_every`` steps so
that an interrupted run resumes to the same result.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from common.atomic import atomic_torch_save
from common.checkpoint_io import safe_torch_load
from common.errors import UserError
from common.finite import weights_finite
from common.selection_key import SELECTION_KEY, beats, selection_key
from common.tensorboard_log import TrainingLog, tb_folder
from slsg.batches import make_batch
from slsg.loss import slsg_loss
from slsg.network import SLSGNet
from slsg.simulate import SLSGSimulator

FORMAT = "slsg-toolkit-1"


@dataclass
class TrainConfig:
    steps: int = 7001
    lr: float = 0.04
    batch_size: int = 4
    seed: int = 0
    eval_every: int = 100
    save_every: int = 100
    momentum: float = 0.9
    weight_decay: float = 3e-5
    tensorboard: bool = True  # event files in <results>/models/slsg/<dataset>_<class>/tb (--tensorboard 0: none)


def cosine_lr(step: int, steps: int, lr0: float) -> float:
    """lr used for update ``step`` (0-based): ``CosineAnnealingWarmRestarts(T_0=steps)`` stepped with the step index
    after each update, i.e. ``lr0`` for steps 0 and 1, then ``lr0/2 (1 + cos(pi (step-1) / steps))``."""
    t = max(step - 1, 0) % max(steps, 1)
    return 0.5 * lr0 * (1.0 + math.cos(math.pi * t / max(steps, 1)))


def make_optimizer(model: SLSGNet, config: TrainConfig) -> torch.optim.SGD:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def train_step(model: SLSGNet, optimizer: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor,
               lr: float) -> float:
    """One update on a (2B,3,H,W) batch with (2B,1,H,W) targets; returns the loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    seg, aux = model(x)
    loss = slsg_loss(seg, aux, target)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


def save_last(path: Path, model: SLSGNet, optimizer: torch.optim.Optimizer, step: int, best: dict,
              config: TrainConfig, extra: dict, history: list[dict] | None = None) -> None:
    atomic_torch_save({"format": FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "step": step, "best": best, "config": asdict(config), "extra": extra,
                       "history": list(history or []), "torch_rng": torch.get_rng_state()}, path)


def train(model: SLSGNet, images: Sequence[np.ndarray], simulator: SLSGSimulator, config: TrainConfig,
          device: torch.device, best_path: Path, last_path: Path, evaluate: Callable[[], dict] | None = None,
          resume: bool = True, extra: dict | None = None, log: Callable[[str], None] = print) -> dict:
    """Train (resuming from ``last_path`` when it exists and ``resume``); returns the run record."""
    extra = dict(extra or {})
    model.to(device)
    optimizer = make_optimizer(model, config)
    start, best = 0, {"step": None, "image_auroc": None}
    history: list[dict] = []  # one record per evaluation or save: {"epoch": step, "loss", metrics...}
    if resume and last_path.is_file():
        state = safe_torch_load(last_path, "SLSG training checkpoint")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise UserError(f"{last_path} is not an SLSG toolkit training checkpoint; use --retrain to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, best = int(state["step"]), state["best"]
        history = list(state.get("history", []))
        torch.set_rng_state(state["torch_rng"])
        log(f"slsg: resuming from step {start} ({last_path})")
    losses: list[float] = []
    since: list[float] = []  # losses since the last history record (one per evaluation or save)
    tb = TrainingLog(tb_folder(best_path), config.tensorboard, start)
    t0 = time.time()
    for step in range(start, config.steps):
        x, target = make_batch(images, simulator, config.batch_size, config.seed, step)
        loss = train_step(model, optimizer, x.to(device), target.to(device), cosine_lr(step, config.steps, config.lr))
        if not math.isfinite(loss) or not weights_finite(model):  # never evaluate or save diverged weights
            became = loss if not math.isfinite(loss) else "nan or inf (the weights are no longer finite)"
            raise UserError(f"slsg: the loss became {became} at step {step} (try a lower --lr); the last good "
                            f"checkpoint is kept at {last_path}")
        losses.append(loss)
        since.append(loss)
        tb.iteration({"loss": loss, "lr": cosine_lr(step, config.steps, config.lr)})
        done = step + 1
        if done % 10 == 0 or done == config.steps:
            log(f"slsg: step {done}/{config.steps} loss {np.mean(losses[-10:]):.4f} "
                f"({(time.time() - t0) / max(len(losses), 1):.2f} s/step)")
        evaluating = evaluate is not None and config.eval_every > 0 and (done % config.eval_every == 0
                                                                         or done == config.steps)
        saving = done % max(config.save_every, 1) == 0 or done == config.steps
        if evaluating or saving:
            history.append({"epoch": done, "loss": float(np.mean(since))})
            since = []
        if evaluating:
            metrics = evaluate()
            auroc = metrics.get("image_auroc")
            evaluated_on = "validation" if SELECTION_KEY in metrics else "test"
            log(f"slsg: step {done} {evaluated_on} image AUROC {auroc} pixel AUROC {metrics.get('pixel_auroc')}")
            tb.evaluation(done, metrics)
            history[-1].update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            key = selection_key(metrics, auroc)
            if beats(metrics, key, best.get("key", best["image_auroc"])):
                best = {"step": done, "image_auroc": None if auroc is None else float(auroc), "key": key}
                atomic_torch_save(model.state_dict(), best_path)
        if saving:
            save_last(last_path, model, optimizer, done, best, config, extra, history)
            tb.flush()
    tb.close()
    if best["step"] is None:  # no test-set selection: the final model is the one reported
        best = {"step": config.steps, "image_auroc": None}
        atomic_torch_save(model.state_dict(), best_path)
        save_last(last_path, model, optimizer, config.steps, best, config, extra, history)
    elif start >= config.steps and not best_path.is_file():
        atomic_torch_save(model.state_dict(), best_path)
    return {"best_epoch": best["step"], "last_epoch": config.steps, "losses": losses, "epochs": history}
