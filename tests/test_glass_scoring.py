"""Eval-time scoring with the affine projection folded into the discriminator's first Linear, against D(P(x))."""
from __future__ import annotations

import pytest
import torch

from glass.network import GlassNet


class _NoBackbone(torch.nn.Module):
    def forward(self, images):
        return [images]


@pytest.mark.parametrize("pre_proj, dsc_layers", [(1, 2), (2, 3), (1, 1), (0, 2)])
def test_folded_scores_equal_projection_then_discriminator(pre_proj, dsc_layers):
    torch.manual_seed(pre_proj * 10 + dsc_layers)
    net = GlassNet(_NoBackbone(), 48, 48, 3, pre_proj, dsc_layers, 32)
    for module in net.modules():  # non-trivial BN statistics and biases
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
        elif isinstance(module, torch.nn.Linear) and module.bias is not None:
            module.bias.data.normal_()
    net.eval()
    x = torch.randn(300, 48)
    with torch.no_grad():
        straight = net.discriminator(net.project(x))
        folded = net.score_embedding(x)
    assert folded.shape == straight.shape == (300, 1)
    assert torch.allclose(folded, straight, rtol=0, atol=1e-6)
    assert float(straight.std()) > 1e-3  # the scores are not saturated constants
