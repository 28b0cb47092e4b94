"""Which evaluation is kept: the trainers' reference keys keep the first of equal epochs; an evaluation carrying its
own key (``--select val``: image + pixel AUROC on the validation set) gives equal scores to the later epoch."""
from __future__ import annotations

import math

import numpy as np
import torch

from common.selection_key import SELECTION_KEY, beats, image_plus_pixel, selection_key
from runner.selection import keyed


def test_beats():
    plain, own = {"image_auroc": 0.9}, {"image_auroc": 0.9, SELECTION_KEY: 1.5}
    assert beats(plain, 0.9, None) and beats(own, 1.5, None)  # anything beats no best yet
    assert not beats(plain, 0.9, 0.9) and beats(plain, 0.91, 0.9)  # reference: strictly greater
    assert beats(own, 1.5, 1.5) and not beats(own, 1.49, 1.5)  # own key: ties to the later epoch
    assert not beats(plain, float("nan"), None) and not beats(plain, None, 0.1)
    assert selection_key(plain, 0.9) == 0.9 and selection_key(own, 0.9) == 1.5
    assert image_plus_pixel({"image_auroc": 1.0, "pixel_auroc": float("nan")}) == 1.0
    assert keyed({"image_auroc": 0.75, "pixel_auroc": 0.5})[SELECTION_KEY] == 1.25


def _constant(metrics: dict):
    calls = []

    def evaluate():
        calls.append(1)
        return dict(metrics)

    return evaluate, calls


def test_glass_trainer_keeps_the_first_or_the_last_of_equal_epochs(tmp_path):
    from glass.trainer import Trainer, TrainConfig
    from glass.gas import GasConfig
    from glass_tiny import tiny_trainer_inputs

    kept = {}
    for name, metrics in (("reference", {"image_auroc": 1.0, "pixel_auroc": 0.5}),
                          ("val", keyed({"image_auroc": 1.0, "pixel_auroc": 0.5}))):
        net, las, centre = tiny_trainer_inputs()
        trainer = Trainer(net, TrainConfig(meta_epochs=3, batch_size=4, limit=100, gas=GasConfig(step=1)),
                          torch.device("cpu"))
        evaluate, calls = _constant(metrics)
        kept[name] = trainer.fit(las, centre, tmp_path / name, evaluate, log=lambda _: None)["best_epoch"]
        assert len(calls) == 3
    assert kept == {"reference": 0, "val": 2}


def test_slsg_trainer_keeps_the_first_or_the_last_of_equal_steps(tmp_path):
    from slsg.network import SLSGNet
    from slsg.simulate import SLSGSimulator
    from slsg.trainer import TrainConfig, train

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(2)]
    kept = {}
    for name, metrics in (("reference", {"image_auroc": 1.0, "pixel_auroc": 0.5}),
                          ("val", keyed({"image_auroc": 1.0, "pixel_auroc": 0.5}))):
        torch.manual_seed(0)
        evaluate, calls = _constant(metrics)
        config = TrainConfig(steps=4, batch_size=1, seed=0, eval_every=2, save_every=2)
        record = train(SLSGNet(grid=6), images, SLSGSimulator("grass", None, images), config, torch.device("cpu"),
                       tmp_path / f"{name}.tch", tmp_path / f"{name}_last.tch", evaluate, log=lambda _: None)
        kept[name] = record["best_epoch"]
        assert len(calls) == 2 and not math.isnan(record["last_epoch"])
    assert kept == {"reference": 2, "val": 4}
