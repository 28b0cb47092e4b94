"""Large-kernel attention on the encoder skips (``SpatialAttention(C, k=3, dilation=3)`` of the reference)."""
from __future__ import annotations

import torch
from torch import nn


class _AttentionCore(nn.Module):
    """``conv1(conv_spatial(conv0(x)))``: depthwise 3x3, depthwise 3x3 dilation 3, pointwise 1x1 (all with bias)."""

    def __init__(self, channels: int, kernel: int = 3, dilation: int = 3) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.conv_spatial = nn.Conv2d(channels, channels, kernel, padding=dilation * (kernel // 2),
                                      dilation=dilation, groups=channels)
        self.conv1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Module):
    """``out = x + p2(relu(x * AT(x)))``; x: (B,C,H,W) -> (B,C,H,W). ``p1`` exists only for key compatibility."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p1 = nn.Conv2d(channels, channels, 1)  # unused by the reference forward; kept for strict loading
        self.AT = _AttentionCore(channels)
        self.p2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.p2(torch.relu(x * self.AT(x)))
