"""SLSG units: network shapes, loss against an independent numpy computation, schedule, simulator rules."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slsg.graph import relative_position
from slsg.loss import slsg_loss
from slsg.network import SLSGNet
from slsg.simulate import LOCO_CLASSES, SLSGSimulator
from slsg.trainer import cosine_lr


def test_network_shapes_and_parameter_counts():
    net = SLSGNet(grid=6).eval()  # 96 x 96 input: 6 x 6 = 36 graph nodes
    with torch.no_grad():
        seg, aux = net(torch.randn(2, 3, 96, 96))
    assert seg.shape == aux.shape == (2, 2, 96, 96)
    assert net.GCN3.last_neighbours.shape == (2, 36, 9)
    full = SLSGNet()
    unique = {id(p): p for p in full.parameters()}.values()  # f_query aliases f_key
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    total = sum(p.numel() for p in unique)  # the reference table counts the fixed relative_pos too
    assert abs(total / 1e6 - 21.12) < 0.01 and abs(trainable / 1e6 - 9.37) < 0.01  # reference table (slsg.md §3)
    with pytest.raises(ValueError):
        net(torch.randn(1, 3, 128, 128))  # graph built for 6 x 6 nodes


def test_relative_pos_range_and_distant_preference():
    rel = relative_position(512, 16)[0].numpy()
    assert rel.shape == (256, 256) and np.allclose(np.diag(rel), -1.0)
    assert -1.0 - 1e-6 <= rel.min() and rel.max() <= -0.64
    # the term added to a similarity is largest for far-apart nodes (the reference's sign quirk)
    assert rel[0, 255] > rel[0, 1]


def _reference_loss(seg: np.ndarray, aux: np.ndarray, target: np.ndarray) -> float:
    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, pa = softmax(seg), softmax(aux)
    flat = p.transpose(0, 2, 3, 1).reshape(-1, 2)
    t = target.reshape(-1).astype(int)
    onehot = np.zeros_like(flat)
    onehot[np.arange(len(t)), t] = 1
    onehot = np.clip(onehot, 1e-5, 1 - 1e-5)
    pt = (onehot * flat).sum(1) + 1e-5
    focal = np.mean(-((1 - pt) ** 4) * np.log(pt))
    return 0.4 * focal + 0.6 * np.abs(p[:, 1] - target).mean() + 0.3 * np.abs(pa[:, 1] - target).mean()


def test_loss_matches_independent_computation():
    g = torch.Generator().manual_seed(0)
    seg, aux = torch.randn(4, 2, 8, 8, generator=g) * 3, torch.randn(4, 2, 8, 8, generator=g)
    target = (torch.rand(4, 1, 8, 8, generator=g) > 0.7).float()
    ours = float(slsg_loss(seg.double(), aux.double(), target))
    assert ours == pytest.approx(_reference_loss(seg.double().numpy(), aux.double().numpy(),
                                                 target[:, 0].double().numpy()), rel=1e-10)


def test_cosine_schedule_equals_warm_restarts_stepped_with_the_index():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.04)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=50)
    for step in range(50):
        assert opt.param_groups[0]["lr"] == pytest.approx(cosine_lr(step, 50, 0.04), abs=1e-12)
        opt.step()
        sched.step(step)
    assert cosine_lr(49, 50, 0.04) < 0.04 * 0.01 and math.isclose(cosine_lr(1, 50, 0.04), 0.04)


def _image(seed: int, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 60, np.uint8)
    img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = rng.integers(100, 255, 3)
    return (img + rng.integers(0, 20, img.shape)).astype(np.uint8)


@pytest.mark.parametrize("category", [*LOCO_CLASSES, "carpet"])
def test_simulator_deterministic_and_mask_rules(category, tmp_path):
    others = [_image(i) for i in range(3)]
    texture = tmp_path / "t" / "a.jpg"
    texture.parent.mkdir()
    import cv2

    cv2.imwrite(str(texture), np.random.default_rng(9).integers(0, 255, (140, 150, 3), dtype=np.uint8))
    sim = SLSGSimulator(category, [str(texture)], others)
    min_area = (64 if category == "pushpins" else 49) / 4  # at 128 x 128 the 256-px areas scale by 1/4
    branches = set()
    for seed in range(12):
        a = sim(others[0], np.random.default_rng(seed))
        b = sim(others[0], np.random.default_rng(seed))
        np.testing.assert_array_equal(a.aug, b.aug)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.aug.shape == (128, 128, 3) and a.aug.dtype == np.uint8
        assert set(np.unique(a.mask)) <= {0.0, 1.0} and a.mask.sum() >= min_area
        assert np.array_equal(a.aug[a.mask == 0], others[0][a.mask == 0])  # outside the mask: untouched
        branches.add(a.branch)
        if category == "juice_bottle":
            assert a.beta == 0.0 and a.mask[:, 101:].sum() == 0 and a.mask[120:].sum() == 0
        elif category == "breakfast_box":
            assert 0.0 <= a.beta <= 0.7
        elif a.branch == "scar" and category in ("pushpins", "splicing_connectors"):
            assert a.beta == 0.0
        elif a.branch == "scar":
            assert 0.0 <= a.beta <= 0.25
    assert branches == {"scar", "texture"}


def test_branch_probability_matches_reference_rule():
    sim = SLSGSimulator("carpet", ["unused"], [])
    draws = [np.random.default_rng(s).uniform(0.0, 0.6) < 0.35 for s in range(2000)]
    assert abs(np.mean(draws) - 0.35 / 0.6) < 0.03 and sim.category == "generic"
