"""``main.py --test export | info`` and ``--test predict`` with an exported model (entry: ``run_deploy``).

    python main.py --test export --checkpoint results/models/backbone_0/mvtec_carpet --output carpet.onnx
    python main.py --test info --checkpoint carpet.onnx
    python main.py --test predict --checkpoint carpet.onnx --input photos/ --output predictions/
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import UserError

EXPORTED_SUFFIXES = (".onnx", ".xml")
PREDICT_DEFAULT_OUTPUT = "results/predictions"


def add_export_arguments(group) -> None:
    """The flags of ``--test export`` (torch-free: called while the parser is built)."""
    group.add_argument("--format", choices=("onnx", "openvino"), default=None,
                       help="--test export: onnx (.onnx) or openvino (.xml + .bin); default: from --output's suffix")
    group.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                       help="--test export --format openvino: store the weights as fp32 or fp16")


def is_exported(checkpoint: str | None) -> bool:
    return bool(checkpoint) and Path(checkpoint).suffix.lower() in EXPORTED_SUFFIXES


def run_deploy(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    if args.test == "export":
        return run_export(args, argv or [])
    if args.test == "info":
        return run_info(args)
    return run_exported_predict(args)


def _output_and_format(args: argparse.Namespace) -> tuple[Path, str]:
    fmt = args.format
    output = args.output
    if output in (None, PREDICT_DEFAULT_OUTPUT):
        name = Path(args.checkpoint).stem if Path(args.checkpoint).is_file() else Path(args.checkpoint).name
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


def run_export(args: argparse.Namespace, argv: list[str]) -> int:
    from common.atomic import check_writable
    from common.predict import detect_method
    from deploy.export import export_model

    if not args.checkpoint:
        raise UserError("--test export needs --checkpoint (a GLASS checkpoint folder or file, or an SLSG .tch)")
    checkpoint = Path(args.checkpoint)
    if not checkpoint.exists():
        raise UserError(f"--checkpoint: not found: {checkpoint}")
    if is_exported(args.checkpoint):
        raise UserError(f"--checkpoint {checkpoint} is already an exported model")
    output, fmt = _output_and_format(args)
    found = detect_method(checkpoint)
    if getattr(args, "method_given", False) and args.method != found:
        raise UserError(f"--checkpoint {checkpoint} is a {found.upper()} checkpoint, not {args.method.upper()}: "
                        f"use --method {found}")
    if found != args.method:  # the flags were parsed for the other method: parse them again for this one
        import main

        args = main.parse_args(["--method", found, *argv])
    check_writable(output.parent, "--output")
    info = export_model(checkpoint, output, fmt, method=found, args=args, threshold=args.threshold,
                        precision=args.precision)
    meta, parity = info["metadata"], info["parity"]
    print(f"exported {found.upper()} ({meta['backbone']}, input {meta['input']}) to {info['path']}")
    print(f"threshold {meta['threshold']}; source sha256 {meta.get('source_sha256', '-')}")
    print(f"parity with PyTorch on a random batch: max |score| diff {parity['score']:.2e}, "
          f"max |map| diff {parity['map']:.2e}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from deploy.infer import DeployError, ExportedModel, format_metadata

    if not is_exported(args.checkpoint):
        raise UserError("--test info needs --checkpoint MODEL.onnx or MODEL.xml (an exported model)")
    try:
        model = ExportedModel(args.checkpoint)
    except DeployError as error:
        raise UserError(str(error)) from error
    print(f"{model.path} ({model.runtime})")
    print(format_metadata(model.metadata))
    return 0


def run_exported_predict(args: argparse.Namespace) -> int:
    """``--test predict`` with an exported model: the torch-free helper writes the same files."""
    from deploy.infer import DeployError, ExportedModel, score_folder

    if not getattr(args, "input", None):
        raise UserError("--test predict needs --input (an image, a folder or a glob)")
    try:
        model = ExportedModel(args.checkpoint)
        if getattr(args, "method_given", False) and args.method != model.method:
            raise UserError(f"--checkpoint {args.checkpoint} is a {model.method.upper()} model, not "
                            f"{args.method.upper()}: use --method {model.method}")
        score_folder(model, args.input, args.output or PREDICT_DEFAULT_OUTPUT, args.batch_size, args.threshold,
                     args.save_maps, checkpoint_name=str(args.checkpoint))
    except DeployError as error:
        raise UserError(str(error)) from error
    return 0
