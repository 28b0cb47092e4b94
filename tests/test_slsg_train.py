"""SLSG training on tiny generated data: an interrupted run resumes to the identical model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import datasets
from datasets.demo import generate_demo
from slsg.method import last_path
from slsg.simulate import SLSGSimulator
from slsg.trainer import TrainConfig, train

SIZE = 96  # the smallest input the graph allows (6 x 6 nodes >= 27 neighbours)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("slsg_demo"), size=128, n_train=6, n_test_good=4,
                         n_per_defect=2, classes=["grass"])


def test_resume_gives_the_identical_model(demo, tmp_path):
    images = [np.asarray(datasets.read_rgb(s.image_path).resize((SIZE, SIZE)))
              for s in datasets.load_samples("mvtec", demo.datapath, "grass", "train")[:3]]
    sim = SLSGSimulator("grass", None, images)
    config = TrainConfig(steps=3, batch_size=1, seed=1, eval_every=0, save_every=1)

    def fresh_model():
        torch.manual_seed(5)
        from slsg.network import SLSGNet

        return SLSGNet(grid=SIZE // 16)

    a = fresh_model()
    train(a, images, sim, config, torch.device("cpu"), tmp_path / "a.tch", tmp_path / "a_last.tch", log=lambda _: None)
    b = fresh_model()
    short = TrainConfig(**{**config.__dict__, "steps": 2})
    train(b, images, sim, short, torch.device("cpu"), tmp_path / "b.tch", tmp_path / "b_last.tch", log=lambda _: None)
    c = fresh_model()
    train(c, images, sim, config, torch.device("cpu"), tmp_path / "b.tch", tmp_path / "b_last.tch",
          log=lambda _: None)
    for key, value in a.state_dict().items():
        assert torch.equal(value, c.state_dict()[key]), key
    assert last_path(tmp_path / "b.tch") == tmp_path / "b_last.tch"
