"""shell/run-loco.sh: a dry run from another directory prints a main.py command that the real parser accepts, with
the SLSG reference settings (docs/slsg.md) and the environment overrides applied."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from runner.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "shell" / "run-loco.sh"


def _run(tmp_path: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("LOCO", "DTD", "ENCODER", "PRETRAIN", "CLASSES",
                                                             "DATASET", "RESULTS", "GPU", "PY", "PYTHON")}
    return subprocess.run(["bash", str(SCRIPT), *extra], cwd=tmp_path, env={**base, "DRY_RUN": "1", **env},
                          capture_output=True, text=True, timeout=60)


def test_dry_run_has_reference_settings(tmp_path):
    out = _run(tmp_path, {"LOCO": "/data/loco x", "DTD": "/dtd/images"}, "--num_workers", "0")
    assert out.returncode == 0, out.stderr
    argv = shlex.split(out.stdout.strip())
    assert argv[1] == "main.py" and Path(argv[0]).name.startswith("python")
    args = build_parser("slsg").parse_args(argv[2:])
    assert (args.method, args.test, args.dataset) == ("slsg", "ckpt", "loco")
    assert args.datapath == "/data/loco x" and args.augpath == "/dtd/images"
    assert args.classes == ["breakfast_box", "juice_bottle", "splicing_connectors", "pushpins", "screw_bag"]
    assert (args.imagesize, args.batch_size, args.steps, args.lr, args.eval_every) == (256, 4, 7001, 0.04, 100)
    assert (args.gpu, args.seed, args.num_workers, args.encoder_weights) == ([0], 0, 0, None)
    assert (args.pretrain, args.pretrain_steps) == ("inpaint+pos", 3000)
    assert Path(args.results_path) == REPO / "results" / "slsg_loco"


def test_dry_run_applies_overrides(tmp_path):
    env = {"LOCO": "/data/mvtec", "DTD": "/dtd", "DATASET": "mvtec", "CLASSES": "bottle screw", "PRETRAIN": "none",
           "ENCODER": "/w/resnet18.pth", "RESULTS": str(tmp_path / "r"), "GPU": "-1"}
    out = _run(tmp_path, env)
    assert out.returncode == 0, out.stderr
    args = build_parser("slsg").parse_args(shlex.split(out.stdout.strip())[2:])
    assert (args.dataset, args.classes, args.pretrain) == ("mvtec", ["bottle", "screw"], "none")
    assert (args.encoder_weights, args.results_path, args.gpu) == ("/w/resnet18.pth", str(tmp_path / "r"), [-1])


def test_missing_dataset_root_is_refused(tmp_path):
    out = _run(tmp_path, {"DTD": "/dtd"})
    assert out.returncode != 0 and "set LOCO" in out.stderr and out.stdout == ""
