"""A training process killed with SIGKILL at an arbitrary moment loses at most the current epoch, leaves no
corrupt or half-written file, and `--test ckpt` resumes to the model an uninterrupted run gives, bit for bit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_helpers import tiny_demo, tiny_glass_flags

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 12  # an epoch takes ~0.1 s here: enough of them that the kill lands before the last


def _command(demo, results):
    return [sys.executable, str(REPO / "main.py"), *tiny_glass_flags(demo, results, epochs=EPOCHS)]


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _heads(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {f"{part}.{k}": v for part in ("discriminator", "pre_projection") for k, v in state[part].items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory.mktemp("kill") / "demo")


def test_sigkill_then_resume_equals_uninterrupted_run(demo, tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(_command(demo, straight), check=True, env=_env(), capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    latest = killed / "models/backbone_0/mvtec_brick/ckpt.pth"
    process = subprocess.Popen(_command(demo, killed), env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not latest.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed; make it longer"
    time.sleep(0.1)  # somewhere inside the next epoch (or its checkpoint write)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_epoch = torch.load(latest, map_location="cpu", weights_only=True)["epoch"]
    assert interrupted_epoch < EPOCHS - 1, "the run was not interrupted before its last epoch"

    resumed = subprocess.run(_command(demo, killed), env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {latest} after epoch {interrupted_epoch + 1}" in resumed.stdout
    assert f"epoch 1/{EPOCHS}" not in resumed.stdout  # the finished epochs were not trained again
    assert not list(killed.rglob(".*.tmp")), "a half-written temporary survived the resume"
    a = _heads(straight / "models/backbone_0/mvtec_brick/ckpt.pth")
    b = _heads(latest)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (killed / "results.csv").read_text() == (straight / "results.csv").read_text()
