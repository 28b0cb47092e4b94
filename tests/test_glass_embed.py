"""Patch embedding: the optimised order against the reference order and the closed form of glass.md §4 (the
reference's own ``_embed`` rows are checked in test_glass_fixture.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from glass.embed import PatchEmbedder, embed_reference


def _unfold_rows(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C*9) 3x3 zero-padded neighbourhoods, (c, ky, kx) order, written out by hand."""
    b, c, h, w = feature.shape
    padded = F.pad(feature, (1, 1, 1, 1))
    planes = [padded[:, :, ky:ky + h, kx:kx + w] for ky in range(3) for kx in range(3)]
    stacked = torch.stack(planes, dim=2)  # (B, C, 9, h, w)
    return stacked.reshape(b, c * 9, h * w).transpose(1, 2)


def test_embed_matches_closed_form_wideresnet_layout():
    """WideResNet-50 widths (512, 1024) at 1536/1536: concat(mean6(unfold(l2)), mean12(upsample(unfold(l3))))."""
    torch.manual_seed(0)
    layer2, layer3 = torch.randn(2, 512, 8, 8), torch.randn(2, 1024, 4, 4)
    rows2 = _unfold_rows(layer2)  # (2, 64, 4608)
    part2 = rows2.reshape(2, 64, 768, 6).mean(-1)
    rows3 = _unfold_rows(layer3).transpose(1, 2).reshape(2, 9216, 4, 4)
    up3 = F.interpolate(rows3, size=(8, 8), mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)
    part3 = up3.reshape(2, 64, 768, 12).mean(-1)
    closed = torch.cat([part2, part3], dim=-1).reshape(-1, 1536)
    fast = PatchEmbedder(1536, 1536, 3)([layer2, layer3])
    reference = embed_reference([layer2, layer3], 1536, 1536, 3)
    assert fast.shape == reference.shape == (2 * 64, 1536)
    assert torch.allclose(reference, closed, atol=1e-6)
    assert torch.allclose(fast, closed, atol=1e-6)


def test_embed_uneven_windows_match_reference_order():
    """Non-divisible adaptive pooling (resnet18 widths at 1024) and patch sizes other than 3."""
    torch.manual_seed(1)
    layer2, layer3 = torch.randn(2, 128, 6, 6), torch.randn(2, 256, 3, 3)
    for patchsize in (1, 3, 5):
        fast = PatchEmbedder(1000, 700, patchsize)([layer2, layer3])
        reference = embed_reference([layer2, layer3], 1000, 700, patchsize)
        assert torch.allclose(fast, reference, atol=1e-6), patchsize
