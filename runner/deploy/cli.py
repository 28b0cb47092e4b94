"""``main.py --test export | info`` and ``--test predict`` with an exported model (entry: ``run_deploy``, called by
``runner.cli.main`` before anything reads the checkpoint as a PyTorch one).

    python main.py --test export --checkpoint results/models/backbone_0/mvtec_carpet --output carpet.onnx
    python main.py --test info --checkpoint carpet.onnx
    python main.py --test predict --checkpoint carpet.onnx --input photos/ --output predictions/
"""
from __future__ import annotations

from pathlib import Path

from common.errors import UserError

EXPORTED_SUFFIXES = (".onnx", ".xml")
FORMATS = ("onnx", "openvino")
PREDICT_DEFAULT_OUTPUT = "results/predictions"


def is_exported(checkpoint: str | None) -> bool:
    return bool(checkpoint) and Path(checkpoint).suffix.lower() in EXPORTED_SUFFIXES


def wants_deploy(options) -> bool:
    """``--test export`` / ``info``, or ``--test predict`` with an exported ``.onnx`` / ``.xml`` model."""
    return options.test in ("export", "info") or (options.test == "predict" and is_exported(options.checkpoint))


def run_deploy(invocation) -> int:
    options = invocation.options
    if options.test == "export":
        return run_export(invocation)
    if options.test == "info":
        return run_info(invocation)
    return run_exported_predict(invocation)


def _output_and_format(options) -> tuple[Path, str]:
    fmt = options.format
    output = options.output
    if output in (None, PREDICT_DEFAULT_OUTPUT):
        checkpoint = Path(options.checkpoint)
        name = checkpoint.stem if checkpoint.is_file() else checkpoint.name
        fmt = fmt or "onnx"
        return Path("results") / "exported" / f"{name}{'.onnx' if fmt == 'onnx' else '.xml'}", fmt
    output = Path(output)
    suffix = output.suffix.lower()
    if fmt is None:
        fmt = {".onnx": "onnx", ".xml": "openvino"}.get(suffix)
        if fmt is None:
            raise UserError(f"--output {output}: give a .onnx or .xml file (or --format onnx|openvino)")
    wanted = ".onnx" if fmt == "onnx" else ".xml"
    if suffix != wanted:
        raise UserError(f"--output {output}: --format {fmt} writes a {wanted} file")
    return output, fmt


def export_precision(precision: str) -> str:
    """``--precision`` for export: fp32, or fp16 (OpenVINO fp16 weights); bf16 (an autocast mode) is not offered."""
    if precision == "bf16":
        raise UserError("--precision bf16 is not offered for --test export: use fp32, or fp16 with --format "
                        "openvino (fp16 weights)")
    return precision


def run_export(invocation) -> int:
    from common.atomic import check_writable
    from runner.deploy.export import export_model
    from runner.stored_model import detect_method

    options = invocation.options
    if not options.checkpoint:
        raise UserError("--test export needs --checkpoint (a GLASS checkpoint folder or file, or an SLSG .tch)")
    checkpoint = Path(options.checkpoint)
    if is_exported(options.checkpoint):
        raise UserError(f"--checkpoint {checkpoint} is already an exported model")
    if not checkpoint.exists():
        raise UserError(f"--checkpoint: not found: {checkpoint}")
    precision = export_precision(options.precision)
    output, fmt = _output_and_format(options)
    found = detect_method(checkpoint)
    if options.method_given and options.method != found:
        raise UserError(f"--checkpoint {checkpoint} is a {found.upper()} checkpoint, not {options.method.upper()}: "
                        f"use --method {found}")
    check_writable(output.parent, "--output")
    info = export_model(checkpoint, output, fmt, method=found, flags=invocation.given, threshold=options.threshold,
                        precision=precision)
    meta, parity = info["metadata"], info["parity"]
    print(f"exported {found.upper()} ({meta['backbone']}, input {meta['input']}) to {info['path']}")
    print(f"threshold {meta['threshold']}; source sha256 {meta.get('source_sha256', '-')}")
    print(f"parity with PyTorch on a random batch: max |score| diff {parity['score']:.2e}, "
          f"max |map| diff {parity['map']:.2e}")
    return 0


def run_info(invocation) -> int:
    from runner.deploy.infer import DeployError, ExportedModel, format_metadata

    options = invocation.options
    if not is_exported(options.checkpoint):
        raise UserError("--test info needs --checkpoint MODEL.onnx or MODEL.xml (an exported model)")
    try:
        model = ExportedModel(options.checkpoint)
    except DeployError as error:
        raise UserError(str(error)) from error
    print(f"{model.path} ({model.runtime})")
    print(format_metadata(model.metadata))
    return 0


def run_exported_predict(invocation) -> int:
    """``--test predict`` with an exported model: the torch-free helper writes the same files, then report.html."""
    from runner.deploy.infer import DeployError, ExportedModel, score_folder
    from runner.report import write_predict_report

    options = invocation.options
    if not options.input:
        raise UserError("--test predict needs --input (an image, a folder or a glob)")
    output = Path(options.output or PREDICT_DEFAULT_OUTPUT)
    gallery: list = []
    try:
        model = ExportedModel(options.checkpoint)
        if options.method_given and options.method != model.method:
            raise UserError(f"--checkpoint {options.checkpoint} is a {model.method.upper()} model, not "
                            f"{options.method.upper()}: use --method {model.method}")
        score_folder(model, options.input, output, options.batch_size, options.threshold, options.save_maps,
                     checkpoint_name=str(options.checkpoint), gallery=gallery)
    except DeployError as error:
        raise UserError(str(error)) from error
    threshold = model.threshold if options.threshold is None else float(options.threshold)
    write_predict_report(output, gallery, threshold)
    return 0
