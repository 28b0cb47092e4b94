"""Concurrent runs with real processes: a class's model folder has one holder at a time (a killed holder never
blocks), different classes into one --results_path keep every results.csv row, and run records never collide."""
from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import main
from runner.run import remove_stale_temporaries
from common.errors import UserError
from common.locking import hold_model_folder, lock_paths
from tests.cli_helpers import tiny_demo, tiny_glass_flags

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("brick", "gravel")
HOLDER = ("import sys, time; from pathlib import Path; from common.locking import hold_model_folder\n"
          "with hold_model_folder(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)\n")


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _start_holder(model_path: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(model_path)], cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent")
    demo = tiny_demo(root / "data", classes=CLASSES)
    results = root / "results"
    assert main.main(tiny_glass_flags(demo, results)) == 0
    return demo, results


def test_a_second_run_on_a_held_class_stops_at_once_naming_the_holder(trained, tmp_path, capsys):
    demo, _ = trained
    results = tmp_path / "results"
    model = results / "models/backbone_0/mvtec_brick"
    holder = _start_holder(model)  # another process holds the class
    try:
        code = main.main([*tiny_glass_flags(demo, results), "--classes", "brick"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert str(model) in errors[0] and f"pid {holder.pid}" in errors[0] and socket.gethostname() in errors[0]
    assert not model.exists()  # it stopped before training anything


def test_a_lock_left_by_a_killed_process_never_blocks(tmp_path):
    model = tmp_path / "models/slsg/mvtec_brick.tch"
    holder = _start_holder(model)
    with pytest.raises(UserError, match=f"pid {holder.pid}"):
        with hold_model_folder(model):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_paths(model)[1].is_file()  # the killed holder's record is left behind ...
    with hold_model_folder(model):  # ... and does not block
        assert f'"pid": {os.getpid()}' in lock_paths(model)[1].read_text()
    assert not lock_paths(model)[1].exists()


def test_different_classes_into_one_results_path_keep_every_row(trained):
    demo, results = trained
    (results / "results.csv").unlink()
    for record in results.glob("run_*.json"):
        record.unlink()
    runs = [subprocess.Popen([sys.executable, "main.py", *tiny_glass_flags(demo, results), "--classes", cls,
                              "--test", "test"], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for cls in CLASSES]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0] * len(CLASSES), [err[-2000:] for _, err in outputs]
    with open(results / "results.csv", newline="") as handle:
        names = sorted(row["Row Names"] for row in csv.DictReader(handle) if row["Row Names"] != "Mean")
    assert names == sorted(f"mvtec_{cls}" for cls in CLASSES)
    assert len(list(results.glob("run_glass_*.json"))) == len(CLASSES)  # started in the same second


def test_resuming_one_slsg_class_leaves_other_classes_temporaries_alone(tmp_path):
    folder = tmp_path / "models/slsg"
    folder.mkdir(parents=True)
    mine = [folder / ".mvtec_brick.tch.a1b2.tmp", folder / ".mvtec_brick_last.tch.c3d4.tmp",
            folder / ".mvtec_brick.toolkit.json.e5f6.tmp"]
    theirs = [folder / ".mvtec_gravel_last.tch.x9y8.tmp", folder / ".mvtec_brick_2.tch.z7w6.tmp"]
    for path in mine + theirs:
        path.write_bytes(b"")
    remove_stale_temporaries(folder / "mvtec_brick.tch")
    assert not any(p.exists() for p in mine) and all(p.exists() for p in theirs)
