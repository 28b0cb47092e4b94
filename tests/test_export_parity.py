"""Exported GLASS and SLSG (ONNX and OpenVINO) against the toolkit's PyTorch inference: scores and maps within
1e-4 for batch 1 and 5, at two input sizes each; the decision output, the metadata, and OpenVINO FP16's deviation
(reported, not held to 1e-4)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
ov = pytest.importorskip("openvino")

from runner.cli import parse  # noqa: E402
from runner.deploy.export import TIE_GAP, export_method, slsg_tie_gaps, torch_predict  # noqa: E402
from runner.deploy.infer import ExportedModel  # noqa: E402

TOLERANCE = 1e-4
GLASS_FLAGS = ["-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3", "--pretrain_embed_dimension", "64",
               "--target_embed_dimension", "64", "--dsc_hidden", "64"]


def _glass(size: int):
    from glass.method import GlassMethod

    config = parse(GLASS_FLAGS + ["--imagesize", str(size), "--resize", str(size)]).config
    return GlassMethod.build(config, torch.device("cpu"), "brick")


def _slsg(size: int):
    from slsg.method import SLSGMethod

    config = parse(["--method", "slsg", "--imagesize", str(size)]).config
    torch.manual_seed(size)
    method = SLSGMethod.build(config, torch.device("cpu"), "brick")
    method.model.eval()
    return method


BUILDERS = {"glass": _glass, "slsg": _slsg}
CASES = [("glass", 64), ("glass", 96), ("slsg", 96), ("slsg", 128)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{m}-{s}" for m, s in CASES])
def exported(request, tmp_path_factory):
    name, size = request.param
    method = BUILDERS[name](size)
    pre = method.preprocessing(train=False)
    folder = tmp_path_factory.mktemp(f"{name}{size}")
    paths = {}
    for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".xml")):
        info = export_method(method, pre, folder / f"model{suffix}", fmt, threshold=0.5, threshold_rule="test",
                             verify=False)
        paths[fmt] = info["path"]
    return method, pre, paths, size


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("batch", [1, 5])
def test_exported_matches_pytorch(exported, fmt, batch):
    method, pre, paths, size = exported
    images = np.random.default_rng(batch + size).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    want_scores, want_maps = torch_predict(method, pre, images)
    model = ExportedModel(paths[fmt])
    scores, maps, anomalous = model.run(images)
    assert scores.shape == (batch,) and maps.shape == (batch, size, size) and anomalous.dtype == bool
    assert np.array_equal(anomalous, scores >= np.float32(0.5))
    score_diff = np.abs(scores - want_scores)
    map_diff = np.abs(maps - want_maps).reshape(batch, -1).max(1)
    if method.name == "slsg":
        # A neighbour ranking within float rounding of a tie may flip (any runtime/device may pick the other
        # node): only such images may differ by more than 1e-4, and by a bounded amount.
        sensitive = slsg_tie_gaps(method, pre, images) < TIE_GAP
        off = (map_diff >= TOLERANCE) | (score_diff >= TOLERANCE)
        assert not (off & ~sensitive).any(), (map_diff, score_diff, sensitive)
        assert map_diff.max() < 1e-2 and score_diff.max() < 1e-2
        assert batch == 1 or (~sensitive).sum() >= 3  # the 1e-4 claim is tested on most images
        if off.any():
            print(f"\n{method.name} {size}px {fmt}: {off.sum()}/{batch} image(s) with a near-tie neighbour flip, "
                  f"max |map| diff {map_diff.max():.1e}")
        return
    assert score_diff.max() < TOLERANCE
    assert map_diff.max() < TOLERANCE
    assert maps.std() > 0  # a real map, not a constant


def test_metadata_inside_the_file(exported):
    method, pre, paths, size = exported
    for path in paths.values():
        meta = ExportedModel(path).metadata
        assert meta["method"] == method.name
        assert json.loads(meta["input_size"]) == [size, size]
        assert json.loads(meta["preprocessing"]) == json.loads(json.dumps(pre.to_dict()))
        assert float(meta["threshold"]) == 0.5 and meta["precision"] == "fp32"
        assert "NHWC" in meta["input"] and meta["toolkit_version"]


def test_openvino_fp16_deviation_is_reported(tmp_path, capsys):
    method = _glass(64)
    pre = method.preprocessing(train=False)
    info = export_method(method, pre, tmp_path / "fp16.xml", "openvino", precision="fp16")
    assert ExportedModel(info["path"]).metadata["precision"] == "fp16"
    with capsys.disabled():
        print(f"\nOpenVINO FP16 weights (GLASS demo, 64 px): max |score| diff {info['parity']['score']:.2e}, "
              f"max |map| diff {info['parity']['map']:.2e}")
    assert np.isfinite(info["parity"]["map"]) and info["parity"]["map"] < 0.1


def test_source_hash_of_a_checkpoint_file(tmp_path):
    method = _glass(64)
    file = tmp_path / "ckpt_best_3.pth"
    torch.save({"discriminator": method.net.discriminator.state_dict(),
                "pre_projection": method.net.projection.state_dict()}, file)
    from runner.deploy.export import export_model

    flags = parse(GLASS_FLAGS + ["--imagesize", "64", "--resize", "64"]).given
    info = export_model(file, tmp_path / "m.onnx", flags=flags)
    assert info["metadata"]["source_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert info["metadata"]["threshold"] == "none" and info["parity"]["map"] < TOLERANCE


@pytest.mark.parametrize("length,size", [(4608, 1024), (1152, 1024), (360, 64), (2048, 1024), (7, 3)])
def test_exportable_channel_pool_equals_adaptive_avg_pool(length, size):
    from runner.deploy.graph import ChannelPool
    from glass.embed import adaptive_mean

    x = torch.randn(2, length, 5)
    want = adaptive_mean(x.transpose(1, 2), size).transpose(1, 2)
    got = ChannelPool(length, size)(x)
    assert got.shape == (2, size, 5) and torch.allclose(got, want, rtol=0, atol=1e-6)


def test_map_matrices_equal_upsampling_and_gaussian():
    from runner.deploy.graph import gaussian_matrix, upsampling_matrix
    from glass.inference import scores_and_maps

    patch = torch.rand(3, 9, 7, dtype=torch.float32)
    scores, maps = scores_and_maps(patch.reshape(-1), 3, (9, 7), (40, 30))
    rows = (gaussian_matrix(40) @ upsampling_matrix(9, 40)).float()
    cols = (gaussian_matrix(30) @ upsampling_matrix(7, 30)).float()
    assert torch.allclose(rows @ patch @ cols.T, maps, rtol=0, atol=1e-6)
    assert torch.equal(scores, patch.flatten(1).amax(1))
