"""The reference GLASS checkpoint (../shared/fixtures/glass-reference: resnet18, float16 weights, 288 px) exported
through the CLI with the flags `--test test` needs: the exported model reproduces the reference's scores and maps
from the reference's own uint8 inputs, and the PyTorch inference within 1e-4."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

import main  # noqa: E402
from runner.cli import parse  # noqa: E402
from runner.deploy.export import export_model, torch_predict  # noqa: E402
from runner.deploy.infer import ExportedModel  # noqa: E402


def _flags(root) -> list[str]:
    return ["-b", "resnet18", "-le", "layer2", "-le", "layer3", "--backbone_weights",
            str(root / "backbone_resnet18.pth"), "--resize", "288", "--imagesize", "288"]


@pytest.fixture(scope="module")
def reference(fixtures_dir, tmp_path_factory):
    root = fixtures_dir / "glass-reference"
    ckpt = root / "results" / "models" / "backbone_0" / "mvtec_carpet"
    out = tmp_path_factory.mktemp("ref")
    code = main.main(["--test", "export", "--checkpoint", str(ckpt), "--output", str(out / "ref.onnx"),
                      "--threshold", "0.98", *_flags(root)])
    assert code == 0
    info = export_model(ckpt, out / "ref.xml", "openvino", flags=parse(_flags(root)).given, verify=False)
    return root, np.load(root / "expected.npz"), {"onnx": out / "ref.onnx", "openvino": info["path"]}


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_reference_checkpoint_exported(reference, fmt):
    root, data, paths = reference
    model = ExportedModel(paths[fmt])
    meta = model.metadata
    assert meta["method"] == "glass" and meta["backbone"] == "resnet18" and meta["input_size"] == "[288, 288]"
    assert meta["source_checkpoint"].endswith("ckpt_best_2.pth")
    images = data["input_uint8"]
    scores, maps, anomalous = model.run(images)
    assert np.abs(scores - data["image_scores"]).max() < 1e-5
    assert np.abs(maps - data["anomaly_maps"]).max() < 1e-5
    if fmt == "onnx":
        assert float(meta["threshold"]) == 0.98
        assert np.array_equal(anomalous, scores >= np.float32(0.98))
        assert anomalous.any() and not anomalous.all()
    else:
        assert meta["threshold"] == "none" and not anomalous.any()
    for part in (slice(0, 1), slice(1, 6)):  # batch 1 and batch 5
        s, m, _ = model.run(images[part])
        assert np.abs(s - data["image_scores"][part]).max() < 1e-5
        assert np.abs(m - data["anomaly_maps"][part]).max() < 1e-5


def test_reference_matches_pytorch_inference(reference):
    root, data, paths = reference
    from runner.predict import load

    detector = load(root / "results" / "models" / "backbone_0" / "mvtec_carpet", flags=parse(_flags(root)).given)
    want_scores, want_maps = torch_predict(detector.model, detector.preprocessing, data["input_uint8"])
    scores, maps, _ = ExportedModel(paths["onnx"]).run(data["input_uint8"])
    assert np.abs(scores - want_scores).max() < 1e-4 and np.abs(maps - want_maps).max() < 1e-4
