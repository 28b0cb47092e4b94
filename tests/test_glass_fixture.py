"""The reference GLASS test path on ../shared/fixtures/glass-reference: a resnet18 (float16 file) and the
reference checkpoint ckpt_best_2.pth must reproduce every image score, map and metric."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from glass.config import GlassConfig
from glass.method import GlassMethod


@pytest.fixture(scope="module")
def fixture(fixtures_dir):
    root = fixtures_dir / "glass-reference"
    return root, np.load(root / "expected.npz")


def _config(root) -> GlassConfig:
    return GlassConfig(backbone_names=["resnet18"], layers_to_extract_from=["layer2", "layer3"],
                       backbone_weights=str(root / "backbone_resnet18.pth"))


@pytest.fixture(scope="module")
def method(fixture):
    root, _ = fixture
    model = GlassMethod.build(_config(root), torch.device("cpu"), "carpet", "mvtec")
    info = model.load(root / "results" / "models" / "backbone_0" / "mvtec_carpet", which="best")
    assert info["epoch"] == 2
    return model


@pytest.fixture(scope="module")
def inputs(fixture, method):
    root, data = fixture
    pre = method.preprocessing(train=False)
    images = [Image.open(root / p).convert("RGB") for p in data["image_paths"]]
    for image, expected in zip(images, data["input_uint8"]):
        assert np.array_equal(pre.image_uint8(image), expected)  # PIL antialiased resize + crop, exact
    return torch.stack([pre.image(image) for image in images])


def test_backbone_and_embedding_match_reference(fixture, method, inputs):
    _, data = fixture
    assert np.abs(inputs[:, :, :16, :16].numpy() - data["debug_input_crop16"]).max() < 1e-6
    layer2, layer3 = method.net.backbone(inputs[:1])
    assert np.abs(layer2[0, :, :4, :4].numpy() - data["debug_layer2_img0_crop4x4"]).max() < 1e-4
    assert np.abs(layer3[0, :, :4, :4].numpy() - data["debug_layer3_img0_crop4x4"]).max() < 1e-4
    embedding, grid = method.net.embed(inputs[:1])
    assert grid == (36, 36)
    rows = data["debug_rows"]
    assert np.abs(embedding[rows].numpy() - data["debug_embed_rows_img0"]).max() < 1e-5
    with torch.no_grad():
        projected = method.net.project(embedding[rows]).numpy()
    assert np.abs(projected - data["debug_proj_rows_img0"]).max() < 1e-5


def test_scores_maps_and_metrics_match_reference(fixture, method, inputs):
    _, data = fixture
    with torch.no_grad():
        patch, _ = method.net.patch_scores(inputs)
    assert np.abs(patch.reshape(6, 36, 36).numpy() - data["patch_scores"]).max() < 2e-5
    scores, maps = method.predict(inputs)
    assert scores.shape == (6,) and maps.shape == (6, 288, 288) and maps.dtype == np.float32
    assert np.abs(scores - data["image_scores"]).max() < 1e-5
    assert np.abs(maps - data["anomaly_maps"]).max() < 1e-5

    import metrics  # noqa: PLC0415  (another package; reference rules: GT positive only where == 1.0)

    labels, gt = data["labels"], data["gt_masks"]
    masks = (gt == 1.0).astype(np.uint8)
    expected = {"image_auroc": 0.75, "image_ap": 0.8875, "pixel_auroc": 0.9178193564605386,
                "pixel_ap": 0.5225346043523686, "pixel_pro": 0.7951719446389629}
    got = {"image_auroc": metrics.image_auroc(labels, scores), "image_ap": metrics.image_ap(labels, scores),
           "pixel_auroc": metrics.pixel_auroc(masks, maps), "pixel_ap": metrics.pixel_ap(masks, maps),
           "pixel_pro": metrics.glass_pro(gt.astype(np.float64), maps)}
    off = {key: (got[key], value) for key, value in expected.items() if not abs(got[key] - value) < 1e-4}
    assert not off, off  # every metric reported at once
