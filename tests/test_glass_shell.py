"""GLASS shell scripts: a dry run from another directory prints a main.py command that the real parser accepts,
with the reference settings of glass.md §2 for each dataset."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from runner.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
MVTEC = "carpet grid leather tile wood bottle cable capsule hazelnut metal_nut pill screw toothbrush transistor zipper"
# script: (--test, --dataset, --distribution, --fg, classes) from the reference table
TABLE = {
    "run-mvtec": ("ckpt", "mvtec", 0, 1, MVTEC),
    "run-visa": ("ckpt", "visa", 0, 1, "candle capsules cashew chewinggum fryum macaroni1 macaroni2 pcb1 pcb2 pcb3 "
                                      "pcb4 pipe_fryum"),
    "run-mpdd": ("ckpt", "mpdd", 0, 0, "bracket_black bracket_brown bracket_white connector metal_plate tubes"),
    "run-wfdd": ("ckpt", "wfdd", 0, 1, "grey_cloth grid_cloth yellow_cloth pink_flower"),
    "run-mad-man": ("test", "mad-man", 0, 1, MVTEC),
    "run-mad-sys": ("test", "mad-sys", 0, 1, "carpet grid leather tile wood"),
    "run-custom": ("ckpt", "mvtec", 2, 0, "class1 class2"),
}


def _dry_run(script: str, tmp_path: Path, *extra: str) -> list[str]:
    env = {**os.environ, "DRY_RUN": "1", "GLASS_DATAPATH": "/data/x y", "GLASS_AUGPATH": "/dtd/images"}
    out = subprocess.run(["bash", str(REPO / "shell" / f"{script}.sh"), *extra], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    return shlex.split(out.stdout.strip())


@pytest.mark.parametrize("script", sorted(TABLE))
def test_dry_run_has_reference_settings(script, tmp_path):
    argv = _dry_run(script, tmp_path, "--num_workers", "0")
    assert argv[1] == "main.py" and Path(argv[0]).name.startswith("python")
    args = build_parser("glass").parse_args(argv[2:])
    test, dataset, distribution, fg, classes = TABLE[script]
    assert (args.method, args.test, args.dataset) == ("glass", test, dataset)
    assert (args.distribution, args.fg) == (distribution, fg)
    assert args.classes == classes.split()
    assert args.datapath == "/data/x y" and args.augpath == "/dtd/images"
    assert args.backbone_names == ["wideresnet50"] and args.layers_to_extract_from == ["layer2", "layer3"]
    assert (args.pretrain_embed_dimension, args.target_embed_dimension, args.patchsize) == (1536, 1536, 3)
    assert (args.meta_epochs, args.eval_epochs, args.dsc_layers, args.dsc_hidden, args.pre_proj) == (640, 1, 2, 1024, 1)
    assert (args.mining, args.noise, args.radius, args.p, args.step, args.limit) == (1, 0.015, 0.75, 0.5, 20, 392)
    assert (args.mean, args.std, args.rand_aug, args.batch_size, args.resize, args.imagesize) == (0.5, 0.1, 1, 8, 288,
                                                                                                   288)
    assert (args.gpu, args.seed, args.lr, args.num_workers) == ([0], 0, 1e-4, 0)


def test_mad_runs_read_mvtec_checkpoints(tmp_path):
    from glass.method import GlassMethod
    from runner.options import RunOptions

    for dataset in ("mad-man", "mad-sys"):
        options = RunOptions(dataset=dataset, results_path=str(tmp_path))
        assert GlassMethod.checkpoint_path(tmp_path, options.checkpoint_dataset, "carpet") == \
            tmp_path / "models" / "backbone_0" / "mvtec_carpet"
