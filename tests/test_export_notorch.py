"""An exported demo GLASS model scores a folder in a process where importing torch fails, writing the scores of
`main.py --test predict` with the PyTorch checkpoint; `--test predict/info/export` with exported files; the
torch-free helper's preprocessing and colours against the toolkit's; bad input."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

import main  # noqa: E402
from cli_helpers import tiny_demo, tiny_glass_flags  # noqa: E402
from runner.deploy import infer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NO_TORCH = """
import runpy, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch must not be imported here: " + name)
sys.meta_path.insert(0, NoTorch())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    assert "torch" not in sys.modules
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("notorch")
    demo = tiny_demo(root / "demo")
    results = root / "results"
    assert main.main(tiny_glass_flags(demo, results)) == 0
    ckpt = results / "models" / "backbone_0" / "mvtec_brick"
    for out in ("model.onnx", "model.xml"):
        assert main.main(["--test", "export", "--checkpoint", str(ckpt), "--output", str(root / out)]) == 0
    folder = root / "in"
    folder.mkdir()
    sources = sorted((demo.datapath / "brick" / "test").rglob("*.png"))
    for i, source in enumerate(sources):
        image = Image.open(source)
        if i == 0:  # another size and aspect: the helper resizes and crops as training did
            image = image.resize((90, 71))
        elif i == 1:
            image = image.convert("RGBA")
        elif i == 2:  # 16-bit grayscale: read by its high byte, as training does
            image = Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257 + 3)
        (folder / f"sub{i % 2}").mkdir(exist_ok=True)
        image.save(folder / f"sub{i % 2}" / f"{i}.png")
        if i == 3:  # x.png beside x.jpg: the output names keep the extensions
            image.convert("RGB").save(folder / f"sub{i % 2}" / f"{i}.jpg", quality=90)
    torch_out = root / "torch_out"
    assert main.main(["--test", "predict", "--checkpoint", str(ckpt), "--input", str(folder), "--output",
                      str(torch_out)]) == 0
    return root, ckpt, folder, torch_out


def _rows(folder: Path) -> list[dict]:
    return list(csv.DictReader(open(folder / "predictions.csv")))


def _same_predictions(got: list[dict], want: list[dict]) -> None:
    assert [r["image"] for r in got] == [r["image"] for r in want]
    scores = np.array([float(r["score"]) for r in got])
    expected = np.array([float(r["score"]) for r in want])
    assert np.abs(scores - expected).max() < 1e-5
    threshold = float(want[0]["threshold"])
    assert [r["threshold"] for r in got] == [r["threshold"] for r in want]
    clear = np.abs(expected - threshold) > 1e-5  # an image on the threshold itself may go either way
    assert clear.sum() >= len(want) - 1
    assert [r["anomalous"] for r, c in zip(got, clear) if c] == [r["anomalous"] for r, c in zip(want, clear) if c]


@pytest.mark.parametrize("model_name", ["model.onnx", "model.xml"])
def test_helper_without_torch_scores_like_predict(trained, tmp_path, model_name):
    root, _, folder, torch_out = trained
    helper = tmp_path / "infer.py"  # a copy outside the repository: the helper needs nothing from it
    shutil.copy(REPO / "runner" / "deploy" / "infer.py", helper)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(helper), str(root / model_name), "--input",
                           str(folder), "--output", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    _same_predictions(_rows(out), _rows(torch_out))
    images = [Path(row["image"]) for row in _rows(torch_out)]
    names = infer.output_stems(images, folder)
    assert len(set(names.values())) == len(images) and any(name.suffix == ".jpg" for name in names.values())
    for path in images:
        rel = Path(f"{names[path]}.png")
        want = np.asarray(Image.open(torch_out / "overlays" / rel)).astype(int)
        got = np.asarray(Image.open(out / "overlays" / rel)).astype(int)
        assert got.shape == want.shape == (64, 128, 3)
        assert np.array_equal(got[:, :64], want[:, :64])  # the shown input, exactly
        assert (got != want).mean() < 0.01 and np.abs(got - want).max() <= 3  # colours of maps within 1e-6
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["method"] == "glass" and len(summary["images"]) == len(_rows(torch_out))


def test_module_form_without_torch(trained, tmp_path):
    """``python -m runner.deploy.infer``: importing ``runner`` and ``runner.deploy`` must not import torch."""
    root = trained[0]
    runner_code = NO_TORCH.replace('runpy.run_path(sys.argv[0], run_name="__main__")',
                                   'runpy.run_module("runner.deploy.infer", run_name="__main__", alter_sys=True)')
    done = subprocess.run([sys.executable, "-c", runner_code, "runner.deploy.infer", str(root / "model.onnx"),
                           "--info"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "method" in done.stdout and "glass" in done.stdout


def test_blocker_really_blocks(tmp_path):
    script = tmp_path / "uses_torch.py"
    script.write_text("import torch\n")
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(script)], capture_output=True, text=True)
    assert done.returncode != 0 and "torch must not be imported" in done.stderr


def test_cli_predict_and_info_with_exported_model(trained, tmp_path, capsys):
    root, ckpt, folder, torch_out = trained
    out = tmp_path / "cli"
    assert main.main(["--test", "predict", "--checkpoint", str(root / "model.onnx"), "--input", str(folder),
                      "--output", str(out), "--save_maps"]) == 0
    _same_predictions(_rows(out), _rows(torch_out))
    assert (out / "report.html").is_file() and "overlays/" in (out / "report.html").read_text()
    overlays = sorted(p.relative_to(out) for p in (out / "overlays").rglob("*.png"))
    assert overlays == sorted(p.relative_to(torch_out) for p in (torch_out / "overlays").rglob("*.png"))
    tiff = next((out / "maps").rglob("*.tiff"))
    assert np.asarray(Image.open(tiff)).dtype == np.float32
    capsys.readouterr()
    assert main.main(["--test", "info", "--checkpoint", str(root / "model.xml")]) == 0
    printed = capsys.readouterr().out
    stored = json.loads((ckpt / "toolkit.json").read_text())
    assert "method" in printed and "efficientnet_lite0" in printed and repr(stored["threshold"]) in printed
    import hashlib

    best = next(ckpt.glob("ckpt_best_*.pth"))
    assert hashlib.sha256(best.read_bytes()).hexdigest() in printed


def test_helper_preprocessing_equals_training(tmp_path):
    from datasets.preprocess import glass_preprocessing, slsg_preprocessing
    from datasets.image_io import read_rgb

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (71, 90, 3), dtype=np.uint8))
    for pre in (glass_preprocessing("brick", 64, 56), glass_preprocessing("wood", 80, 64),
                glass_preprocessing("brick", 100, 96), slsg_preprocessing(96)):
        geometry = infer.Geometry.from_dict(json.loads(json.dumps(pre.to_dict())))
        assert np.array_equal(geometry(image), pre.image_uint8(image))
    samples = {
        "rgba.png": Image.fromarray(rng.integers(0, 256, (40, 50, 4), dtype=np.uint8), "RGBA"),
        "la.png": Image.fromarray(rng.integers(0, 256, (40, 50, 2), dtype=np.uint8), "LA"),
        "gray16.png": Image.fromarray(rng.integers(0, 65536, (40, 50), dtype=np.uint16)),
        "gray32.tiff": Image.fromarray(rng.integers(0, 70000, (40, 50), dtype=np.int32)),
        "float.tiff": Image.fromarray(rng.random((40, 50), dtype=np.float32)),
        "big.jpg": Image.fromarray(rng.integers(0, 256, (600, 700, 3), dtype=np.uint8)),
    }
    palette = Image.fromarray(rng.integers(0, 8, (40, 50), dtype=np.uint8), "P")
    palette.putpalette(list(rng.integers(0, 256, 768)))
    palette.info["transparency"] = 2
    samples["palette.png"] = palette
    for name, image in samples.items():
        path = tmp_path / name
        image.save(path)
        for max_side in (64, 100):
            got, want = infer.read_rgb(path, max_side), read_rgb(path, max_side)
            assert np.array_equal(np.asarray(got), np.asarray(want)), name


def test_jet_colours_equal_opencv():
    import cv2

    want = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
    assert np.array_equal(infer.JET_LUT, want)
    from runner.results import heatmap_panel

    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    amap = np.random.default_rng(2).random((8, 8), dtype=np.float32)
    assert np.array_equal(infer.heat_overlay(rgb, amap), heatmap_panel(rgb, None, amap)[:, 16:])


def test_bad_input_is_one_error_line(trained, tmp_path, capsys):
    root, ckpt, folder, _ = trained
    cases = [
        (["--test", "export"], "--checkpoint"),
        (["--test", "export", "--checkpoint", str(ckpt), "--output", str(tmp_path / "m.txt")], "--output"),
        (["--test", "export", "--checkpoint", str(ckpt), "--format", "openvino", "--output",
          str(tmp_path / "m.onnx")], "--output"),
        (["--test", "info", "--checkpoint", str(ckpt)], "--checkpoint"),
        (["--test", "export", "--checkpoint", str(ckpt), "--precision", "bf16", "--output", str(tmp_path / "m.xml")],
         "--precision"),
        (["--test", "export", "--checkpoint", str(ckpt), "--precision", "fp16", "--output", str(tmp_path / "m.onnx")],
         "--precision"),
        (["--test", "export", "--checkpoint", str(ckpt), "--method", "slsg", "--output", str(tmp_path / "m.onnx")],
         "--method"),
        (["--test", "predict", "--checkpoint", str(root / "model.onnx"), "--method", "slsg", "--input", str(folder),
          "--output", str(tmp_path / "p")], "--method"),
        (["--test", "predict", "--checkpoint", str(tmp_path / "missing.onnx"), "--input", str(folder)],
         "--checkpoint"),
    ]
    for argv, flag in cases:
        capsys.readouterr()
        assert main.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and flag in err[0], err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert main.main(["--test", "info", "--checkpoint", str(broken)]) == 2


def test_cli_exports_an_slsg_file_without_method_flag(tmp_path):
    """A bare SLSG state dict (as the released <class>.tch): the method is detected and the flags re-read for it."""
    import torch

    from slsg.network import SLSGNet

    torch.manual_seed(0)
    net = SLSGNet(grid=6).eval()
    torch.save(net.state_dict(), tmp_path / "loco_x.tch")
    out = tmp_path / "s.xml"
    assert main.main(["--test", "export", "--checkpoint", str(tmp_path / "loco_x.tch"), "--imagesize", "96",
                      "--output", str(out)]) == 0
    model = infer.ExportedModel(out)
    assert model.method == "slsg" and model.geometry.imagesize == (96, 96) and model.geometry.interpolation == "lanczos"
    images = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        want = torch.softmax(net(x)[0], 1)[:, 1].numpy()
    scores, maps, anomalous = model.run(images)
    assert np.abs(maps - want).max() < 1e-2 and not anomalous.any()  # independent forward; ties may flip (docs)
    assert np.median(np.abs(maps - want)) < 1e-5
    assert np.abs(scores - np.sort(want.reshape(2, -1), 1)[:, -100:].mean(1)).max() < 1e-2
