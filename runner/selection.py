"""Which epoch is kept (``--select test|val|last``): the rule decides what the per-epoch ``evaluate`` callback of
the trainers scores (and, under ``val``, the selection key it carries).

- ``test`` (default, the reference): the labelled test set; optimistic, kept for paper comparisons.
- ``val``: the dataset's own ``validation/good`` images when it has them (MVTec LOCO), otherwise a held-out share
  (``--val_share``) of the good training images, plus, per image, ``--val_anomalies`` seeded synthetic anomalies
  from the method's own image-space synthesis (GLASS: LAS; SLSG: its simulator; each in ``<method>/validation.py``);
  the key is image + pixel AUROC on it for both methods, equal scores going to the later epoch
  (``common/selection_key.py``). No test label is read.
- ``last``: no per-epoch evaluation; the final epoch is the model.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

from common.errors import UserError
from common.selection_key import SELECTION_KEY, image_plus_pixel
from datasets.tiling import TiledModel
from runner.options import RunOptions

# method name -> module with NAME and anomaly_maker(model, held) -> datasets.validation.AnomalyMaker
ANOMALY_MAKERS = {"glass": "glass.validation", "slsg": "slsg.validation"}


@dataclass
class Selection:
    train: list               # the images to train on (without the held-out ones under ``val``)
    evaluate: Callable | None  # the per-epoch callback for ``fit`` (None: the last epoch is kept)
    rule: str                 # what results.csv says selected the epoch


def check_selection(options: RunOptions) -> None:
    """Refused before anything is written: combinations the rule cannot serve."""
    if options.select == "val" and options.method not in ANOMALY_MAKERS:
        raise UserError(f"--select val: no validation anomalies for --method {options.method}")


def prepare_selection(options: RunOptions, model, train: Sequence, test_evaluate: Callable | None,
                      score: Callable[[object, object], dict], own_validation: Sequence = ()) -> Selection:
    """``test_evaluate``: the callback on the test set (or None without one); ``score(method, dataset)``: the
    selection metrics of a method on a ``TestDataset``-like set (the caller's evaluation, ``full=False``);
    ``own_validation``: the dataset's validation/good images (used instead of holding out training images)."""
    if options.select == "last":
        return Selection(list(train), None, "last")
    if options.select == "test":
        if test_evaluate is None:
            return Selection(list(train), None, "last (no test set)")
        return Selection(list(train), test_evaluate, "test")
    from datasets.validation import SyntheticValidation, split_for_validation

    if own_validation:
        kept, held, source = list(train), list(own_validation), "validation/good"
    else:
        kept, held = split_for_validation(train, options.val_share, options.seed)
        source = "good"
    makers = importlib.import_module(ANOMALY_MAKERS[options.method])
    per_image = options.val_anomalies
    where = ("good image(s) of the dataset's validation/good (all training images train; --val_share unused)"
             if own_validation else f"good image(s) held out of training ({len(kept)} left to train on)")
    method, bases = model, held
    if isinstance(model, TiledModel):  # validate on tiles, as trained: whole held-out images cut like train/
        method, bases = model.model, model.validation_tiles(held)
        source, where = f"{source} in {len(bases)} tiles", f"{where}, cut into {len(bases)} tiles"
    validation = SyntheticValidation(bases, method.preprocessing(train=False), makers.anomaly_maker(method, bases),
                                     options.seed, per_image)
    print(f"--select val: {len(held)} {where} + {len(bases) * per_image} synthetic anomalies ({makers.NAME})")
    return Selection(kept, lambda scored: keyed(score(scored, validation)),
                     f"val ({len(held)} {source} + {len(bases) * per_image} {makers.NAME})")


def keyed(metrics: dict) -> dict:
    """Validation metrics with their own selection key (``common/selection_key.py``): image + pixel AUROC (NaN
    parts left out), equal scores going to the later epoch."""
    return {**metrics, SELECTION_KEY: image_plus_pixel(metrics)}
