"""Channels-last (the CPU speed path of benchmarks/slsg_speed.py) computes the same training step as NCHW: in float64
loss, maps and gradients agree to rounding. (In float32 the two layouts round differently, ~1e-5 on features, and a
near-tie in the graph's top-k neighbour choice can then flip, which moves the loss by ~1e-4: docs/slsg.md, Speed.)"""
from __future__ import annotations

import copy

import numpy as np
import torch

from slsg.batches import make_batch
from slsg.loss import slsg_loss
from slsg.network import SLSGNet
from slsg.simulate import SLSGSimulator

SIZE = 96


def _step(model: SLSGNet, x: torch.Tensor, target: torch.Tensor, fmt: torch.memory_format):
    model = copy.deepcopy(model).to(memory_format=fmt).train()
    seg, aux = model(x.contiguous(memory_format=fmt))
    loss = slsg_loss(seg, aux, target)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(loss.detach()), seg.detach(), grads, model.GCN3.graph_conv.dilated_knn_graph.f_key[1].running_mean.clone()


def test_channels_last_step_equals_nchw_in_float64():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2)]
    x, target = make_batch(images, SLSGSimulator("grass", None, images), 1, 0, 0)
    torch.manual_seed(0)
    model = SLSGNet(grid=SIZE // 16).double()
    a = _step(model, x.double(), target.double(), torch.contiguous_format)
    b = _step(model, x.double(), target.double(), torch.channels_last)
    assert 0.05 < a[0] and abs(a[0] - b[0]) < 1e-12
    assert float((a[1] - b[1]).abs().max()) < 1e-9
    assert float((a[2] - b[2]).norm() / a[2].norm()) < 1e-7  # float32 layouts differ by ~2e-4
    torch.testing.assert_close(a[3], b[3], rtol=1e-10, atol=1e-12)  # BN running stats moved identically
