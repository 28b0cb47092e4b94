"""The SLSG U-Net decoder and auxiliary head (attribute names and Sequential indices as the reference)."""
from __future__ import annotations

import torch
from torch import nn


def up2() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)


def upsample(x: torch.Tensor, times2: int) -> torch.Tensor:
    """Repeated x2 bilinear (align_corners) steps, as the reference chains them (not one x2^n resize)."""
    for _ in range(times2):
        x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    return x


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Decoder(nn.Module):
    """Graph output + attended skips + aux features -> 2-class logits at twice the conv1 resolution."""

    def __init__(self, aux_channels: int = 32) -> None:
        super().__init__()
        self.up1 = nn.Sequential(up2(), *conv_bn_relu(512, 256))
        self.db1 = nn.Sequential(*conv_bn_relu(512, 256), *conv_bn_relu(256, 256))
        self.up2 = nn.Sequential(up2(), *conv_bn_relu(256, 128))
        self.db2 = nn.Sequential(*conv_bn_relu(256 + aux_channels, 128), *conv_bn_relu(128, 128))
        self.up3 = nn.Sequential(up2(), *conv_bn_relu(128, 64))
        self.db3 = nn.Sequential(*conv_bn_relu(128 + aux_channels, 64), *conv_bn_relu(64, 64))
        self.up4 = nn.Sequential(*conv_bn_relu(64, 32))
        self.db4 = nn.Sequential(*conv_bn_relu(96, 64))
        self.res_bn_relu = nn.Sequential(nn.BatchNorm2d(24), nn.ReLU(inplace=True))  # unused; strict-load key
        self.final_out_seg = nn.Sequential(up2(), *conv_bn_relu(64, 32), *conv_bn_relu(32, 16),
                                           nn.Conv2d(16, 2, 3, padding=1))

    def forward(self, g: torch.Tensor, l3: torch.Tensor, l2: torch.Tensor, l1: torch.Tensor, s0: torch.Tensor,
                a0: torch.Tensor) -> torch.Tensor:
        """g (B,512,h,w), l3 (B,256,2h,2w), l2 (B,128,4h,4w), l1 and s0 (B,64,8h,8w), a0 (B,32,h,w)
        -> logits (B,2,16h,16w)."""
        x = self.db1(torch.cat([self.up1(g), l3], dim=1))
        x = self.db2(torch.cat([self.up2(x), l2, upsample(a0, 2)], dim=1))
        x = self.db3(torch.cat([self.up3(x), l1, upsample(a0, 3)], dim=1))
        x = self.db4(torch.cat([self.up4(x), s0], dim=1))
        return self.final_out_seg(x)


def aux_features() -> nn.Sequential:
    """``aux0``: (B,512,h,w) -> a0 (B,32,h,w)."""
    return nn.Sequential(*conv_bn_relu(512, 256), *conv_bn_relu(256, 32))


def aux_logits() -> nn.Sequential:
    """``aux0_out``: a0 (B,32,h,w) -> (B,2,h,w); the network upsamples it x16."""
    return nn.Sequential(*conv_bn_relu(32, 32), nn.Conv2d(32, 2, 3, padding=1))
