"""Which epoch is kept (``--select test|val|last``) without changing the trainers: the rule only decides what the
per-epoch ``evaluate`` callback scores.

- ``test`` (default, the reference): the labelled test set; optimistic, kept for paper comparisons.
- ``val``: a held-out share (``--val_share``) of the good training images plus, per image, ``--val_anomalies``
  seeded synthetic anomalies from the method's own image-space synthesis (GLASS: LAS; SLSG: its simulator); the
  trainers' usual key (image + pixel AUROC for GLASS, image AUROC for SLSG) is computed on it. No test label is read.
- ``last``: no per-epoch evaluation; the final epoch is the model.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

from common.errors import UserError

RULES = ("test", "val", "last")


@dataclass
class Selection:
    train: list               # the images to train on (without the held-out ones under ``val``)
    evaluate: Callable | None  # the per-epoch callback for ``fit`` (None: the last epoch is kept)
    rule: str                 # what results.csv says selected the epoch


def prepare_selection(args, model, train: Sequence, test_evaluate: Callable | None,
                      score: Callable[[object, object], dict]) -> Selection:
    """``test_evaluate``: the callback on the test set (or None without one); ``score(method, dataset)``: the
    selection metrics of a method on a ``TestDataset``-like set (the caller's evaluation, ``full=False``)."""
    rule = getattr(args, "select", "test") or "test"
    if rule not in RULES:
        raise UserError(f"--select: unknown rule {rule!r}; choose from {', '.join(RULES)}")
    if rule == "last":
        return Selection(list(train), None, "last")
    if rule == "test":
        if test_evaluate is None:
            return Selection(list(train), None, "last (no test set)")
        return Selection(list(train), test_evaluate, "test")
    from datasets.validation import SyntheticValidation, split_for_validation

    if int(getattr(args, "tile", 0) or 0):
        raise UserError("--select val with --tile is not supported yet (the validation anomalies are made on whole "
                        "method inputs); use --select last")

    kept, held = split_for_validation(train, float(getattr(args, "val_share", 0.2)), int(args.seed))
    maker_module = importlib.import_module(f"{args.method}.validation")
    make_maker = maker_module.anomaly_maker
    maker = make_maker(model, args, held) if "held" in inspect.signature(make_maker).parameters \
        else make_maker(model, args)
    per_image = int(getattr(args, "val_anomalies", 1))
    if per_image < 1:
        raise UserError(f"--val_anomalies must be >= 1, got {per_image}")
    validation = SyntheticValidation(held, model.preprocessing(train=False), maker, int(args.seed), per_image)
    print(f"--select val: {len(held)} held-out good image(s) + {len(held) * per_image} synthetic anomalies "
          f"({maker_module.NAME}); {len(kept)} image(s) left for training")
    return Selection(kept, lambda method: score(method, validation),
                     f"val ({len(held)} good + {len(held) * per_image} {maker_module.NAME})")
