"""Export a trained GLASS or SLSG model to ONNX or OpenVINO IR, with pre- and post-processing in the graph.

    from runner.deploy import export_model
    info = export_model("results/models/backbone_0/mvtec_carpet", "carpet.onnx")            # or format="openvino"

The graph (``runner.deploy.graph``) takes uint8 RGB images, NHWC (batch, H, W, 3) at the model's input size, batch size
dynamic, and returns ``score`` (B,) float32, ``map`` (B, H, W) float32 and ``anomalous`` (B,) bool (score >= the
stored threshold; never true when none is stored). The metadata travels inside the file: ONNX ``metadata_props``,
OpenVINO ``rt_info`` section ``anomaly_toolkit``. Export uses the TorchScript-based ``torch.onnx.export(...,
dynamo=False)``: it traces the wrapper exactly, with a dynamic batch axis, and is checked against PyTorch right after.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from common.atomic import atomic_write_bytes
from common.errors import UserError
from runner.deploy.graph import GlassGraph, SlsgGraph
from runner.deploy.infer import METADATA_SECTION

FORMATS = {"onnx": ".onnx", "openvino": ".xml"}
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAMES = ("score", "map", "anomalous")
PREPROCESSING_STEPS = {
    "glass": "read RGB; resize the shorter side to `resize` (PIL bilinear, antialiased; int(resize*long/short) for "
             "the longer side), centre-crop `imagesize` (torchvision rounding, zero padding if smaller)",
    "slsg": "read RGB; resize to exactly imagesize x imagesize (PIL LANCZOS, aspect not kept)",
}
IN_GRAPH = {
    "glass": "x/255, (x-mean)/std; backbone to the last layer read; 3x3 patch aggregation + pooling; projection + "
             "discriminator; score = max patch score; map = bilinear upsampling + Gaussian sigma 4 (scipy reflect)",
    "slsg": "x/255, (x-mean)/std; SLSG network; map = softmax class 1; score = mean of the 100 largest map values",
}


def toolkit_version() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_graph(method, preprocessing, threshold: float | None) -> torch.nn.Module:
    """The export wrapper around a loaded ``GlassMethod`` / ``SLSGMethod`` (moved to the CPU, eval mode)."""
    size = tuple(preprocessing.output_shape)
    if method.name == "glass":
        return GlassGraph(method.net.cpu().eval(), size, preprocessing.mean, preprocessing.std, threshold).eval()
    if method.name == "slsg":
        return SlsgGraph(method.model.cpu().eval(), preprocessing.mean, preprocessing.std, threshold).eval()
    raise UserError(f"cannot export method {method.name!r}")


def describe(method, preprocessing, threshold: float | None, threshold_rule: str = "",
             source: Path | None = None) -> dict[str, str]:
    """The metadata stored in the exported file (string values; JSON for structured ones)."""
    height, width = preprocessing.output_shape
    if method.name == "glass":
        backbone = method.net.backbone.name
        layers = list(method.config.layers_to_extract_from or ("layer2", "layer3"))
    else:
        backbone, layers = "resnet18 (SLSG encoder)", []
    meta = {
        "format_version": "1",
        "method": method.name,
        "backbone": backbone,
        "layers": json.dumps(layers),
        "input": f"{INPUT_NAME}: uint8 RGB, NHWC (batch, {height}, {width}, 3), batch size dynamic",
        "input_size": json.dumps([height, width]),
        "preprocessing": json.dumps(preprocessing.to_dict()),
        "preprocessing_steps": PREPROCESSING_STEPS[method.name],
        "in_graph": IN_GRAPH[method.name],
        "outputs": "score (B,) float32; map (B,H,W) float32; anomalous (B,) bool = score >= threshold",
        "threshold": "none" if threshold is None else repr(float(threshold)),
        "threshold_rule": threshold_rule or ("none stored" if threshold is None else "given"),
        "toolkit_version": toolkit_version(),
        "torch_version": torch.__version__,
        "opset": str(OPSET),
    }
    if source is not None:
        meta["source_checkpoint"] = str(source)
        meta["source_sha256"] = sha256_file(source)
    return meta


def _onnx_bytes(graph: torch.nn.Module, size: tuple[int, int], meta: dict[str, str]) -> bytes:
    import onnx

    example = torch.zeros(2, *size, 3, dtype=torch.uint8)
    batch = {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad(), _quiet():
            torch.onnx.export(graph, (example,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes={INPUT_NAME: batch, **{name: batch for name in OUTPUT_NAMES}},
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"{meta['method'].upper()} anomaly detector exported by the anomaly toolkit"
    return model.SerializeToString()


class _quiet:
    """The TorchScript exporter warns about every traced shape comparison; they are constants here."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def _write_openvino(onnx_bytes: bytes, meta: dict[str, str], output: Path, fp16: bool) -> None:
    import openvino as ov

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx_path.write_bytes(onnx_bytes)
        model = ov.convert_model(str(onnx_path))
        for key, value in meta.items():
            model.set_rt_info(value, [METADATA_SECTION, key])
        staged = Path(tmp) / output.name
        ov.save_model(model, str(staged), compress_to_fp16=fp16)
        # the weights first, then the .xml that names them: a reader never sees an .xml without its .bin
        os.replace(staged.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(staged, output)


def export_method(method, preprocessing, output: str | Path, format: str = "onnx", threshold: float | None = None,
                  threshold_rule: str = "", source: Path | None = None, precision: str = "fp32",
                  verify: bool = True) -> dict:
    """Export an in-memory ``GlassMethod`` / ``SLSGMethod``. Returns {"path", "metadata", "parity"}."""
    if format not in FORMATS:
        raise UserError(f"--format: choose onnx or openvino, got {format!r}")
    if precision not in ("fp32", "fp16"):
        raise UserError(f"--precision: choose fp32 or fp16, got {precision!r}")
    if precision == "fp16" and format != "openvino":
        raise UserError("--precision fp16 is offered for --format openvino only")
    output = Path(output)
    if output.suffix.lower() != FORMATS[format]:
        raise UserError(f"--output {output}: a {format} model is written to a {FORMATS[format]} file")
    graph = build_graph(method, preprocessing, threshold)
    size = tuple(preprocessing.output_shape)
    meta = describe(method, preprocessing, threshold, threshold_rule, source)
    meta["precision"] = precision
    data = _onnx_bytes(graph, size, meta)
    if format == "onnx":
        atomic_write_bytes(output, data)
    else:
        _write_openvino(data, meta, output, precision == "fp16")
    parity = check_parity(method, preprocessing, output) if verify else None
    return {"path": output, "metadata": meta, "parity": parity}


def check_parity(method, preprocessing, exported: Path, batch: int = 2, seed: int = 0) -> dict:
    """Max |exported - PyTorch| of scores and maps on a random uint8 batch (the method's own ``predict``)."""
    from runner.deploy.infer import ExportedModel

    height, width = preprocessing.output_shape
    images = np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    scores, maps = torch_predict(method, preprocessing, images)
    got_scores, got_maps, _ = ExportedModel(exported).run(images)
    parity = {"score": float(np.abs(got_scores - scores).max()), "map": float(np.abs(got_maps - maps).max())}
    if method.name == "slsg":
        parity["tie_sensitive"] = int((slsg_tie_gaps(method, preprocessing, images) < TIE_GAP).sum())
    return parity


TIE_GAP = 1e-6  # SLSG: neighbour rankings closer than this may flip with float rounding (see slsg_tie_gaps)


def slsg_tie_gaps(method, preprocessing, images: np.ndarray) -> np.ndarray:
    """Per image, the smallest score gap at a boundary of SLSG's kept neighbours (top-27 of the graph relation,
    every 3rd kept). Below ~1e-6 the choice of a neighbour rests on float rounding: any other runtime, thread
    count or device may pick the other node, and the map then moves by more than rounding (a discrete change)."""
    import torch.nn.functional as F

    block = method.model.GCN3
    knn = block.graph_conv.dilated_knn_graph
    captured = {}
    hook = block.fc1.register_forward_hook(lambda module, inputs, output: captured.__setitem__("x", output))
    try:
        torch_predict(method, preprocessing, images)
    finally:
        hook.remove()
    with torch.no_grad():
        x = captured["x"]
        q = knn.f_query(x.reshape(x.shape[0], x.shape[1], -1, 1))
        qn = F.normalize(q.squeeze(-1).transpose(1, 2), p=2.0, dim=-1)
        ranked = (qn @ qn.transpose(2, 1) + block.relative_pos).sort(dim=-1, descending=True).values
    kept = range(0, knn.k * knn.dilation, knn.dilation)
    gaps = [ranked[..., r] - ranked[..., r + 1] for r in kept]
    gaps += [ranked[..., r - 1] - ranked[..., r] for r in kept if r]
    return torch.stack(gaps, -1).flatten(1).amin(1).numpy()


def torch_predict(method, preprocessing, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The toolkit's inference on uint8 NHWC images (normalised as ``Preprocessing.image``)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32).div(255)
    x = x.sub(torch.tensor(preprocessing.mean).view(1, 3, 1, 1)).div(torch.tensor(preprocessing.std).view(1, 3, 1, 1))
    scores, maps = method.predict(x)
    return np.asarray(scores, np.float64), np.asarray(maps, np.float32)


def source_file(method, checkpoint: Path) -> Path:
    """The weight file a checkpoint path resolves to (a GLASS folder: its best checkpoint)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_file():
        return checkpoint
    if method.name == "glass":
        return Path(method.load(checkpoint, which="best")["path"])
    files = sorted(p for p in checkpoint.glob("*.tch") if not p.stem.endswith("_last"))
    return files[0] if len(files) == 1 else checkpoint


def export_model(checkpoint: str | Path, output: str | Path, format: str = "onnx", *, method: str | None = None,
                 flags: dict | None = None, threshold: float | None = None, precision: str = "fp32",
                 verify: bool = True) -> dict:
    """Export a checkpoint (GLASS folder or file, SLSG ``.tch``). ``flags``: the flags given explicitly (as
    ``runner.predict.load`` takes them: they must agree with a stored model; for a reference checkpoint that stores
    none, they build the model, as ``--test test``); ``threshold`` overrides the stored one."""
    from runner.deployment import read_deployment
    from runner.predict import load

    checkpoint = Path(checkpoint)
    detector = load(checkpoint, method=method, device="cpu", flags=flags, threshold=threshold)
    deployment = read_deployment(checkpoint) or {}
    rule = "given (--threshold)" if threshold is not None else deployment.get("threshold_rule", "")
    source = source_file(detector.model, checkpoint)
    return export_method(detector.model, detector.preprocessing, output, format, detector.threshold, rule,
                         source if source.is_file() else None, precision, verify)
