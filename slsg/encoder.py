"""The SLSG encoder: a torchvision ResNet-18 run on a non-standard path (every stage at twice the usual size).

``c1 = conv1(x)``; the skip ``s0 = relu(bn1(c1))``; ``layer1`` runs on the raw ``c1`` (bn1, relu and maxpool are
skipped, as the reference does; the released weights depend on it).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

from common.backbone import load_state_dict_file
from common.errors import UserError


class EncoderSegment(nn.Module):
    """Holds ``resnet18`` (state-dict prefix ``encoder_segment.resnet18.``)."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet18 = resnet18(weights=None)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B,3,H,W) -> [s0 (B,64,H/2,W/2), l1 (B,64,H/2,W/2), l2 (B,128,H/4,W/4), l3 (B,256,H/8,W/8),
        l4 (B,512,H/16,W/16)]."""
        net = self.resnet18
        c1 = net.conv1(x)
        s0 = net.relu(net.bn1(c1))
        l1 = net.layer1(c1)
        l2 = net.layer2(l1)
        l3 = net.layer3(l2)
        l4 = net.layer4(l3)
        return [s0, l1, l2, l3, l4]


def load_resnet18_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision resnet18 state dict (``--encoder_weights`` or a pre-training output), float16 widened.

    Raises ``UserError`` naming the file when it is missing or is not a resnet18 state dict.
    """
    state = load_state_dict_file(path, "--encoder_weights")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = set(resnet18(weights=None).state_dict())
    missing = sorted(k for k in expected if k not in state and not k.startswith("fc."))
    if missing:
        raise UserError(f"--encoder_weights: {path} is not a torchvision resnet18 state dict "
                        f"(missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
    return state


def init_encoder(encoder: EncoderSegment, weights: str | Path | None) -> str:
    """Load ImageNet (or pre-trained) resnet18 weights; None = random init with a warning. Returns a description."""
    if weights is None:
        warnings.warn("SLSG encoder: no --encoder_weights given and no ImageNet ResNet-18 weights exist offline; "
                      "the encoder starts from a RANDOM initialisation (results will be far below the paper's)",
                      RuntimeWarning, stacklevel=2)
        return "random"
    state = load_resnet18_file(weights)
    own = encoder.resnet18.state_dict()
    for key in own:
        if key.startswith("fc.") and key not in state:
            state[key] = own[key]
    bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise UserError(f"--encoder_weights: {weights}: shape mismatch for {', '.join(bad[:3])}")
    encoder.resnet18.load_state_dict({k: state[k] for k in own}, strict=True)
    return str(weights)
