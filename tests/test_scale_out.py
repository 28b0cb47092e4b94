"""torchrun scale-out on the CPU (gloo): ranks share the (class, seed) work units and the merged results.csv equals
a one-process run's, exactly; a SIGKILLed rank loses nothing finished; two "nodes" on localhost agree too."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from cli_helpers import tiny_demo, tiny_glass_flags
from runner.unit_log import PrefixedLines
from runner.work_units import exit_status, finished_row, fingerprint, write_unit_file

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("brick", "gravel", "grass", "coins")
EPOCHS = 2

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*launcher: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, str(REPO / "main.py")]


def _flags(demo, results: Path) -> list[str]:
    return tiny_glass_flags(demo, results, epochs=EPOCHS)


def _rows(results: Path) -> dict[str, dict]:
    with open(results / "results.csv", newline="") as handle:
        return {row.pop("Row Names"): row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory.mktemp("scale") / "demo", classes=CLASSES)


@pytest.fixture(scope="module")
def one_process(demo, tmp_path_factory) -> Path:
    """The reference: the 4 classes one after another in one plain process (1 thread)."""
    results = tmp_path_factory.mktemp("one") / "results"
    subprocess.run([sys.executable, str(REPO / "main.py"), *_flags(demo, results)], check=True, env=_env(),
                   capture_output=True, timeout=900)
    rows = _rows(results)
    assert set(rows) == {f"mvtec_{c}" for c in CLASSES} | {"Mean"}
    return results


@needs_gloo
def test_two_ranks_give_the_rows_of_one_process(demo, one_process, tmp_path):
    results = tmp_path / "two"
    run = subprocess.run([*_torchrun("--nproc_per_node", "2", "--master_port", str(_free_port())),
                          *_flags(demo, results), "--threads", "1"],
                         env=_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _rows(results) == _rows(one_process)  # every metric column, exactly
    assert (results / "results.csv").read_bytes() == (one_process / "results.csv").read_bytes()
    ranks = {json.loads((results / "units" / f"mvtec_{c}.json").read_text())["rank"] for c in CLASSES}
    assert ranks == {0, 1}, "both ranks took units"
    epoch_lines = [line for line in run.stdout.splitlines() if " epoch " in line]
    assert len(epoch_lines) == len(CLASSES) * EPOCHS
    assert all(line.startswith(("[rank 0 unit mvtec_", "[rank 1 unit mvtec_")) for line in epoch_lines)
    assert "work units:" in run.stdout and "4 unit(s) run" in run.stdout

    again = subprocess.run([*_torchrun("--nproc_per_node", "2", "--master_port", str(_free_port())),
                            *_flags(demo, results), "--threads", "1"],
                           env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 already finished, 0 to run" in again.stdout
    assert " epoch " not in again.stdout
    assert _rows(results) == _rows(one_process)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@needs_gloo
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the rank processes")
def test_a_sigkilled_rank_keeps_finished_units_and_the_rerun_completes(demo, one_process, tmp_path):
    results = tmp_path / "killed"
    command = [*_torchrun("--nproc_per_node", "2", "--master_port", str(_free_port())), *_flags(demo, results),
               "--threads", "1"]
    launcher = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list((results / "units").glob("*.json")) and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.05)
    ranks = _children(launcher.pid)
    assert launcher.poll() is None and len(ranks) == 2, "the run ended before a rank could be killed"
    os.kill(ranks[1], signal.SIGKILL)
    assert launcher.wait(timeout=300) != 0  # torchrun reports the failed rank and stops the other
    kept = sorted(p.stem for p in (results / "units").glob("*.json"))
    assert 1 <= len(kept) < len(CLASSES), "the kill landed after the last unit; nothing left to resume"

    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(kept)} already finished, {len(CLASSES) - len(kept)} to run" in rerun.stdout
    for name in kept:  # finished units were not trained again
        assert f"unit {name}/0]" not in rerun.stdout
    assert (results / "results.csv").read_bytes() == (one_process / "results.csv").read_bytes()


@needs_gloo
def test_two_nodes_on_localhost_give_the_same_rows(demo, one_process, tmp_path):
    results = tmp_path / "nodes"
    port = _free_port()
    nodes = [subprocess.Popen([*_torchrun("--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                                          "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
                                          "--rdzv_id", "scale-out-test"),
                               *_flags(demo, results), "--threads", "1"],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=900) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    assert (results / "results.csv").read_bytes() == (one_process / "results.csv").read_bytes()
    ranks = {json.loads((results / "units" / f"mvtec_{c}.json").read_text())["rank"] for c in CLASSES}
    assert ranks == {0, 1}


def test_several_seeds_and_class_index_in_one_process(demo, one_process, tmp_path):
    """--seeds 0 1 --class_index 1 (the second class in sorted order: coins): seed 0's row equals the plain run's,
    and seeds_summary.csv holds the mean over both seeds."""
    results = tmp_path / "seeds"
    flags = _flags(demo, results)
    del flags[flags.index("--seed"):flags.index("--seed") + 2]
    run = subprocess.run([sys.executable, str(REPO / "main.py"), *flags, "--seeds", "0", "1", "--class_index", "1"],
                         env=_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _rows(results / "seed_0")["mvtec_coins"] == _rows(one_process)["mvtec_coins"]
    seed_1 = _rows(results / "seed_1")["mvtec_coins"]
    with open(results / "seeds_summary.csv", newline="") as handle:
        summary = {row["class"]: row for row in csv.DictReader(handle)}
    assert set(summary) == {"mvtec_coins"} and summary["mvtec_coins"]["seeds"] == "2"
    a, b = float(_rows(results / "seed_0")["mvtec_coins"]["pixel_auroc"]), float(seed_1["pixel_auroc"])
    assert float(summary["mvtec_coins"]["pixel_auroc_mean"]) == pytest.approx((a + b) / 2, abs=1e-12)

    bad = subprocess.run([sys.executable, str(REPO / "main.py"), *flags, "--class_index", "4"], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --class_index 4: must be in 0..3 (4 class(es) selected)"


def test_a_unit_file_counts_only_for_the_same_settings(tmp_path):
    values = {"dataset": "mvtec", "meta_epochs": 2, "seed": 0, "num_workers": 0}
    path = tmp_path / "units" / "mvtec_brick.json"
    write_unit_file(path, {"fingerprint": fingerprint(values, 0, "brick"), "row": {"image_auroc": 0.5}})
    assert finished_row(path, fingerprint({**values, "num_workers": 4}, 0, "brick")) == {"image_auroc": 0.5}
    assert finished_row(path, fingerprint({**values, "meta_epochs": 3}, 0, "brick")) is None
    assert finished_row(path, fingerprint(values, 1, "brick")) is None
    assert finished_row(tmp_path / "missing.json", fingerprint(values, 0, "brick")) is None


def test_exit_status_and_prefixed_lines():
    assert exit_status([{"status": "ran"}]) == 0
    assert exit_status([{"status": "failed", "bad_input": True}]) == 2
    assert exit_status([{"status": "failed", "bad_input": True}, {"status": "failed", "bad_input": False}]) == 1

    import io

    target = io.StringIO()
    stream = PrefixedLines(target, "[rank 1 unit mvtec_brick/0]")
    stream.write("epoch 1")
    stream.write("/2\nepoch 2/2\n\npartial")
    stream.flush()
    assert target.getvalue() == ("[rank 1 unit mvtec_brick/0] epoch 1/2\n[rank 1 unit mvtec_brick/0] epoch 2/2\n\n"
                                 "[rank 1 unit mvtec_brick/0] partial\n")


def test_shell_scripts_launch_torchrun_with_nproc(tmp_path):
    def dry(**env) -> str:
        run = subprocess.run(["bash", str(REPO / "shell" / "run-mvtec.sh")], cwd=tmp_path, capture_output=True,
                             text=True, env={**os.environ, "DRY_RUN": "1", "PYTHON": "py", **env}, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert dry().startswith("py main.py --method glass ")
    assert dry(NPROC="4").startswith("py -m torch.distributed.run --nproc_per_node 4 main.py --method glass ")
    assert dry(NPROC="2", NNODES="2", NODE_RANK="1", RDZV_ENDPOINT="node0:29400").startswith(
        "py -m torch.distributed.run --nproc_per_node 2 --nnodes 2 --rdzv_backend c10d --rdzv_endpoint node0:29400 "
        "--rdzv_id glass --node_rank 1 main.py --method glass ")


def test_rank_device_and_thread_share(monkeypatch):
    import torch

    from runner import distributed

    assert distributed.rank_device(None, 3) == torch.device("cpu")
    assert distributed.rank_device([-1], 1) == torch.device("cpu")
    monkeypatch.setattr(distributed, "usable_cpus", lambda: 16)
    assert distributed.cpu_threads_per_rank(4) == 4
    assert distributed.cpu_threads_per_rank(32) == 1
    assert distributed.cpu_threads_per_rank(4, requested=3) == 3
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    world = distributed.join(None)
    assert (world.rank, world.world_size, world.device) == (0, 1, torch.device("cpu"))
    assert [world.next_index() for _ in range(3)] == [0, 1, 2]
