"""Nothing read from disk runs code: a pickle whose ``__reduce__`` would create a marker file is planted at every
path the toolkit reads, in every mode; the payload never runs, and the run stops with one error naming the file."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
import torch

import main
from tests.cli_helpers import tiny_demo, tiny_glass_flags


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> None:
    """Overwrite ``path`` with a torch file whose unpickling would create ``marker``."""
    buffer = io.BytesIO()
    torch.save({"model": _Payload(marker), "format": "slsg-toolkit-1", "discriminator": {}}, buffer)
    path.write_bytes(buffer.getvalue())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny GLASS and one tiny SLSG model on the same generated data."""
    root = tmp_path_factory.mktemp("safe_load")
    demo = tiny_demo(root / "data")
    glass = root / "glass"
    assert main.main(tiny_glass_flags(demo, glass)) == 0
    slsg = root / "slsg"
    assert main.main(slsg_flags(demo, slsg)) == 0
    return demo, glass, slsg


def slsg_flags(demo, results: Path) -> list[str]:
    return ["--method", "slsg", "--dataset", "mvtec", "--datapath", str(demo.datapath), "--augpath",
            str(demo.augpath), "--classes", "brick", "--imagesize", "96", "--steps", "2", "--batch_size", "2",
            "--eval_every", "0", "--pretrain", "none", "--num_workers", "0", "--heatmaps", "0", "--gpu", "-1",
            "--results_path", str(results)]


GLASS_DIR = Path("models/backbone_0/mvtec_brick")
SLSG_BEST = Path("models/slsg/mvtec_brick.tch")
SLSG_LAST = Path("models/slsg/mvtec_brick_last.tch")


def _glass_best(results: Path) -> Path:
    return next((results / GLASS_DIR).glob("ckpt_best_*.pth")).relative_to(results)


# (method, mode, the planted file relative to the results folder (None: a --backbone/--encoder weights file))
CASES = [
    ("glass", "ckpt", GLASS_DIR / "ckpt.pth"),
    ("glass", "test", "best"),
    ("glass", "test", GLASS_DIR / "ckpt.pth"),
    ("glass", "predict", "best"),
    ("glass", "predict-file", "best"),
    ("glass", "ckpt", None),
    ("slsg", "ckpt", SLSG_LAST),
    ("slsg", "test", SLSG_BEST),
    ("slsg", "test", SLSG_LAST),
    ("slsg", "predict", SLSG_BEST),
    ("slsg", "predict", SLSG_LAST),
    ("slsg", "predict-file", SLSG_BEST),
    ("slsg", "ckpt", None),
]


@pytest.mark.parametrize("method,mode,planted", CASES, ids=lambda v: str(v).replace("/", "_"))
def test_a_planted_pickle_never_runs(trained, tmp_path, capsys, method, mode, planted):
    demo, glass, slsg = trained
    results = tmp_path / "results"
    shutil.copytree(glass if method == "glass" else slsg, results)
    (results / "results.csv").unlink(missing_ok=True)
    marker = tmp_path / "MARKER"
    if planted == "best":
        planted = _glass_best(results)
    if planted is None:
        target = tmp_path / "weights.pth"
    else:
        target = results / planted
    plant(target, marker)
    flags = tiny_glass_flags(demo, results) if method == "glass" else slsg_flags(demo, results)
    if method == "glass":
        flags += ["--classes", "brick"]
    if planted is None:
        flags += ["--backbone_weights" if method == "glass" else "--encoder_weights", str(target), "--retrain"]
    if mode.startswith("predict"):
        checkpoint = results / (GLASS_DIR if method == "glass" else SLSG_BEST)
        if mode == "predict-file":
            checkpoint = target
        flags += ["--test", "predict", "--checkpoint", str(checkpoint), "--input",
                  str(demo.datapath / "brick" / "test"), "--output", str(tmp_path / "out")]
    else:
        flags += ["--test", mode]
    code = main.main(flags)
    err = capsys.readouterr().err
    assert not marker.exists(), "the planted payload ran"
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(target) in errors[0], err
    assert "weights_only" not in errors[0]  # no advice to load it unsafely
