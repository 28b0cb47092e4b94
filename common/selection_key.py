"""How a trainer decides that an evaluation beats the best one so far.

The trainers' own keys are the reference's (GLASS: image + pixel AUROC; SLSG: image AUROC), strictly greater wins,
so the first of equal epochs is kept. An evaluation may carry its own ``selection_key`` (``--select val``: image +
pixel AUROC on the validation set); then equal scores go to the later epoch, because the method's synthetic
validation anomalies are often all found (AUROC 1.0) long before training ends, and among epochs the validation
set cannot tell apart the longer-trained one is the default (the ``last`` rule).
"""
from __future__ import annotations

import math
from typing import Mapping

SELECTION_KEY = "selection_key"


def image_plus_pixel(metrics: Mapping[str, float]) -> float:
    """image AUROC + pixel AUROC, a missing or NaN part left out (GLASS's key; the ``--select val`` key)."""
    parts = [metrics.get("image_auroc"), metrics.get("pixel_auroc")]
    return float(sum(v for v in parts if v is not None and not math.isnan(float(v))))


def selection_key(metrics: Mapping[str, float], default: float | None) -> float | None:
    """The evaluation's own key when it carries one, else the trainer's ``default``."""
    value = metrics.get(SELECTION_KEY, default)
    return None if value is None else float(value)


def beats(metrics: Mapping[str, float], key: float | None, best_key: float | None) -> bool:
    """``key`` (of ``metrics``) beats ``best_key``: NaN/None never wins, anything beats no best yet; ties go to the
    later evaluation only when ``metrics`` carries its own key."""
    if key is None or math.isnan(key):
        return False
    if best_key is None:
        return True
    return key >= best_key if SELECTION_KEY in metrics else key > best_key
