"""Bad input on the command line: one clear `error:` line naming the flag or path, exit status 2, no traceback,
and nothing written under --results_path before the inputs are validated."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def run_main(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd, capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=120)


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for rel in ["widget/train/good/000.png", "widget/train/good/001.png", "widget/test/good/000.png",
                "widget/test/dent/000.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (90, 90, 90)).save(root / rel)
    (root / "widget/ground_truth/dent").mkdir(parents=True)
    Image.new("L", (32, 32), 0).save(root / "widget/ground_truth/dent/000_mask.png")
    return root


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_datapath(tmp_path):
    assert_user_error(run_main("--method", "glass", "--results_path", str(tmp_path / "r")), "--datapath")
    assert not (tmp_path / "r").exists()


def test_datapath_not_a_folder(tmp_path):
    result = run_main("--datapath", str(tmp_path / "nope"), "--augpath", str(tmp_path))
    assert_user_error(result, "--datapath", "nope")


def test_missing_augpath_for_training(tiny_tree, tmp_path):
    assert_user_error(run_main("--datapath", str(tiny_tree), "--results_path", str(tmp_path / "r")), "--augpath")
    assert_user_error(run_main("--datapath", str(tiny_tree), "--augpath", str(tmp_path / "dtd")), "--augpath", "dtd")


def test_unknown_class_lists_available(tiny_tree, tmp_path):
    result = run_main("--datapath", str(tiny_tree), "--augpath", str(tmp_path), "--classes", "gadget",
                      "--results_path", str(tmp_path / "r"))
    assert_user_error(result, "gadget", "widget")
    assert not (tmp_path / "r").exists()


def test_unknown_method():
    assert_user_error(run_main("--method", "patchcore"), "--method", "patchcore")


def test_test_mode_without_checkpoint(tiny_tree, tmp_path):
    result = run_main("--test", "test", "--datapath", str(tiny_tree), "--results_path", str(tmp_path / "r"),
                      "-b", "resnet18", "--backbone_weights", "random", "--num_workers", "0")
    assert_user_error(result, "checkpoint")


def test_help_lists_the_flags():
    result = run_main("--method", "glass", "--help")
    assert result.returncode == 0
    for flag in ["--datapath", "--augpath", "--classes", "--test", "--meta_epochs", "--noise", "--radius", "--p",
                 "--step", "--limit", "--distribution", "--mean", "--std", "--fg", "--rand_aug", "--batch_size",
                 "--resize", "--imagesize", "--backbone_names", "--layers_to_extract_from", "--gpu", "--seed",
                 "--backbone_weights", "--save_maps", "--checkpoint", "--input", "--output", "--threshold"]:
        assert flag in result.stdout, flag
