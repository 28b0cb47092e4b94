"""The command line: one parser per method (shared flags + the method's own), parsed once into ``RunOptions`` and
the method's typed config; errors become one ``error:`` line and exit status 2."""
from __future__ import annotations

import argparse
import errno
import sys
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from common.threads import usable_cpus
from runner.options import SELECT_RULES, TEST_MODES, RunOptions
from runner.registry import METHODS, method_class

WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, errno.EDQUOT}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as the toolkit's one ``error:`` line (exit status 2)."""

    def error(self, message: str):
        raise UserError(message)


def build_parser(method: str | None = "glass") -> argparse.ArgumentParser:
    parser = _Parser(
        prog="main.py",
        description="Industrial anomaly detection: train and evaluate GLASS (ECCV 2024) or SLSG (PR 2024).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    common = parser.add_argument_group("common")
    common.add_argument("--method", choices=sorted(METHODS), default="glass", help="which method to run")
    common.add_argument("--config", default=None,
                        help="replay a recorded run: a run_<...>.json from a --results_path (flags given here "
                             "override the recorded ones)")
    common.add_argument("--test", default="ckpt", choices=TEST_MODES,
                        help="ckpt: train (resuming an interrupted run) then evaluate; test: evaluate the "
                             "checkpoints under --results_path; predict: score --input images with --checkpoint "
                             "(also an exported .onnx/.xml); export: --checkpoint to --output .onnx/.xml "
                             "(docs/deploy.md); info: print an exported model's metadata")
    common.add_argument("--dataset", default="mvtec",
                        help="mvtec | visa | mpdd | wfdd | mad-man | mad-sys | loco | folder")
    common.add_argument("--datapath", help="dataset root (the folder that holds the class folders)")
    common.add_argument("--augpath", help="texture folder for anomaly synthesis (DTD: <dtd>/images)")
    common.add_argument("--classes", "-d", "--subdatasets", action="append", default=None,
                        help="class to run (repeat the flag for several); default: every class under --datapath")
    common.add_argument("--results_path", default="results", help="where checkpoints, CSVs and maps go")
    common.add_argument("--gpu", type=int, action="append", default=None,
                        help="CUDA device index (the first is used); -1 or no GPU available = CPU")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--num_workers", type=int, default=min(4, usable_cpus()),
                        help="data-loading worker processes (0 = load in the main process)")
    common.add_argument("--tensorboard", type=int, choices=(0, 1), default=1,
                        help="1: TensorBoard event files in each model folder's tb/ (as the reference)")
    common.add_argument("--threads", type=int, default=0,
                        help="intra-op CPU threads (0 = the CPUs this process may use: affinity and cgroup quota; under torchrun shared evenly among a machine's ranks)")
    common.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="backbone arithmetic: fp32 (the reference) or autocast bf16/fp16 (faster on GPUs); "
                             "--test export --format openvino: fp16 stores fp16 weights (bf16 not offered)")
    common.add_argument("--compile", type=int, choices=(0, 1), default=0,
                        help="1: torch.compile the GLASS discriminator/ascent step (falls back with a warning)")
    common.add_argument("--cudnn_benchmark", type=int, choices=(0, 1), default=0,
                        help="1: cuDNN autotuning (faster; the default 0 keeps the reference's deterministic cuDNN)")
    common.add_argument("--max_eval_ram_mb", type=float, default=1024,
                        help="evaluation maps beyond this many MB of RAM go to a memory-mapped temporary file")
    common.add_argument("--gt_rule", choices=("half", "glass", "nonzero"), default="half",
                        help="binarisation of resized ground truth: >=0.5 (toolkit), ==1.0 (GLASS MVTec), >0 (VisA)")
    common.add_argument("--mask_pairing", choices=("stem", "order"), default="stem",
                        help="pair test images with masks by file stem, or by sorted position (the reference)")
    common.add_argument("--save_maps", action="store_true",
                        help="write scores.csv, maps.npz and tiff/ per class under <results_path>/eval/")
    common.add_argument("--heatmaps", type=int, default=1, help="1: write heat-map PNGs of the test set")
    common.add_argument("--checkpoint", help="a checkpoint file (or folder) to evaluate / predict with")
    common.add_argument("--input", help="--test predict: an image, a folder (searched recursively) or a glob")
    common.add_argument("--output", default="results/predictions",
                        help="--test predict: where results go; --test export: the .onnx / .xml file")
    common.add_argument("--format", choices=("onnx", "openvino"), default=None,
                        help="--test export: onnx (.onnx) or openvino (.xml + .bin); default: from --output's suffix")
    common.add_argument("--threshold", type=float, default=None,
                        help="--test predict: decision threshold (default: the one stored at training time)")
    common.add_argument("--holdout", type=float, default=0.1,
                        help="share of good training images held out for the threshold when there is no test set")
    common.add_argument("--retrain", action="store_true",
                        help="with --test ckpt: start over even if an interrupted run's checkpoint exists")
    common.add_argument("--keep_aspect", type=int, default=0, choices=(0, 1),
                        help="1: fit the whole image inside the input and pad (nothing cropped); 0: the reference "
                             "(a setting of the model: stored with it)")
    common.add_argument("--tile", type=int, default=0,
                        help="train on and score SIZE x SIZE tiles of large images, maps stitched (0: off; a "
                             "setting of the model)")
    common.add_argument("--tile_overlap", type=int, default=0, help="overlap of neighbouring tiles in pixels")
    common.add_argument("--select", choices=SELECT_RULES, default="test",
                        help="which epoch is kept: best on the test set (reference), best on held-out good images "
                             "+ synthetic anomalies (no test label read), or the last")
    common.add_argument("--val_share", type=float, default=0.2, help="--select val: share of good images held out")
    common.add_argument("--val_anomalies", type=int, default=1,
                        help="--select val: synthetic anomalies per held-out image")
    from runner.scale_options import add_arguments as add_scale_out_arguments

    add_scale_out_arguments(parser)
    if method:
        method_class(method).add_arguments(parser)
    return parser


@dataclass
class Invocation:
    """One parsed command line: the run options, the method's typed config and which flags were given."""

    options: RunOptions
    config: object
    given: dict  # flag name -> value, for the flags on the command line (or in the replayed record)
    values: dict  # every flag's value (what the run record stores)


def _given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The flags present on the command line, with their parsed values (defaults left out)."""
    import copy

    quiet = copy.deepcopy(parser)
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    return vars(quiet.parse_args(argv))


def _pick_method(argv: list[str], recorded: dict) -> str:
    """--method, else the recorded run's, else (for --test predict / export) the checkpoint's, else glass."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    pre.add_argument("--test")
    pre.add_argument("--checkpoint")
    known, _ = pre.parse_known_args(argv)
    if known.method:
        method_class(known.method)
        return known.method
    if recorded.get("method"):
        return recorded["method"]
    test = known.test or recorded.get("test")
    checkpoint = known.checkpoint or recorded.get("checkpoint")
    if test in ("predict", "export") and checkpoint and Path(checkpoint).exists():
        from runner.deploy.cli import is_exported
        from runner.stored_model import detect_method

        if is_exported(checkpoint):  # an exported model: runner.deploy reads its method from its metadata
            return "glass"
        return detect_method(Path(checkpoint))
    return "glass"


def parse(argv: list[str]) -> Invocation:
    from runner.replay import recorded_flags

    recorded = recorded_flags(argv)
    method = _pick_method(argv, recorded)
    parser = build_parser(method)
    values = vars(parser.parse_args(argv))
    typed = _given_flags(parser, argv)
    given = {**{k: v for k, v in recorded.items() if k in values}, **typed}
    given.pop("config", None)
    values.update(given)
    values["method"] = method
    values["method_given"] = "method" in typed
    config = method_class(method).config_class.from_flags(values)
    options = RunOptions.from_flags(values)
    return Invocation(options, config, given, values)


def apply_process_settings(options: RunOptions) -> None:
    """Process-wide settings: CPU threads, evaluation memory, backbone precision, compilation, cuDNN."""
    import warnings

    from common.compiled import set_compile
    from common.device import set_cudnn_benchmark
    from common.mapstore import set_default_max_ram_mb
    from common.precision import set_precision
    from common.threads import apply as apply_threads

    apply_threads(options.threads)
    set_default_max_ram_mb(options.max_eval_ram_mb)
    set_precision(options.precision)
    if options.precision != "fp32" and options.method != "glass":
        warnings.warn(f"--precision {options.precision}: only GLASS uses it so far; {options.method} runs in fp32",
                      stacklevel=1)
    set_compile(options.compile)
    set_cudnn_benchmark(options.cudnn_benchmark)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        invocation = parse(argv)
        from runner.deploy.cli import run_deploy, wants_deploy

        if wants_deploy(invocation.options):  # export / info / predict with a .onnx or .xml: never read as torch
            from common.threads import apply as apply_threads

            apply_threads(invocation.options.threads)  # fp32 arithmetic: --precision means the export's weights
            return run_deploy(invocation)
        apply_process_settings(invocation.options)
        if invocation.options.test == "predict":
            from runner.predict import run_predict

            return run_predict(invocation)
        from runner.scale_options import launched_by_torchrun, wants_units

        if invocation.values.get("ddp"):
            if invocation.options.method != "glass":
                raise UserError(f"--ddp 1: data parallelism is implemented for GLASS only, not "
                                f"{invocation.options.method}; drop --ddp (torchrun then spreads the classes)")
            if not launched_by_torchrun():
                print("--ddp 1 without torchrun: one process, as without --ddp", file=sys.stderr)

        if wants_units(invocation.values):
            from runner.work_units import run_units

            return run_units(invocation, argv)
        from runner.run import run_all

        return run_all(invocation, argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot write{where}: {error.strerror} (nothing half-written was left; free space or choose "
              f"another --results_path / --output)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are complete; --test ckpt resumes", file=sys.stderr)
        return 130
