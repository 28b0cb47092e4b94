"""CPU thread selection (common/threads.py): cgroup quota / affinity parsing and the before-torch environment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import threads

REPO = Path(__file__).resolve().parents[1]


def _tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    proc_file = tmp_path / "proc_cgroup"
    proc_file.write_text(proc)
    return root, proc_file


def test_v2_quota_of_own_group(tmp_path):
    root, proc = _tree(tmp_path, "0::/jobs/a\n", {"jobs/a/cpu.max": "150000 100000\n", "cpu.max": "max 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(1.5)


def test_v2_parent_quota_limits_child(tmp_path):
    root, proc = _tree(tmp_path, "0::/jobs/a\n", {"jobs/a/cpu.max": "max 100000\n", "jobs/cpu.max": "50000 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(0.5)


def test_v2_unlimited(tmp_path):
    root, proc = _tree(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) is None


def test_v1_quota(tmp_path):
    files = {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
             "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    root, proc = _tree(tmp_path, "4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n", files)
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(3.0)


def test_v1_unlimited_and_missing_files(tmp_path):
    root, proc = _tree(tmp_path, "3:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                                                        "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) is None
    root, proc = _tree(tmp_path / "none", "garbage\n", {})
    assert threads.cgroup_cpu_limit(root, proc) is None


def test_usable_cpus_is_affinity_capped_by_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    root, proc = _tree(tmp_path, "0::/a\n", {"a/cpu.max": "250000 100000\n"})
    assert threads.usable_cpus(root, proc) == 3  # 2.5 CPUs of quota, rounded up
    root, proc = _tree(tmp_path / "q", "0::/a\n", {"a/cpu.max": "1000 100000\n"})
    assert threads.usable_cpus(root, proc) == 1
    root, proc = _tree(tmp_path / "n", "0::/a\n", {"a/cpu.max": "max 100000\n"})
    assert threads.usable_cpus(root, proc) == 8
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 2)
    root, proc = _tree(tmp_path / "b", "0::/a\n", {"a/cpu.max": "800000 100000\n"})
    assert threads.usable_cpus(root, proc) == 2


def test_affinity_is_the_process_mask():
    assert threads.affinity_cpus() == len(os.sched_getaffinity(0))


def test_threads_from_argv():
    assert threads.threads_from_argv(["--threads", "3"]) == 3
    assert threads.threads_from_argv(["--threads=2", "--x"]) == 2
    assert threads.threads_from_argv(["--threads", "0"]) is None
    assert threads.threads_from_argv(["--threads", "x"]) is None
    assert threads.threads_from_argv([]) is None


def test_configure_early_keeps_user_choices(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda *a: 5)
    env: dict = {}
    assert threads.configure_early([], env) == 5
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "5"
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    assert threads.configure_early([], env) == 2
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    env = {"OMP_NUM_THREADS": "2"}
    assert threads.configure_early(["--threads", "1"], env) == 1 and env["OMP_NUM_THREADS"] == "1"


_PROBE = """
import json, os, runpy, sys
sys.argv = ["main.py", "--threads", "1", "--method", "glass", "--datapath", "/nonexistent-dir"]
seen = {}
import builtins
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    if name == "torch" and "torch" not in seen:
        seen["torch"] = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit:
    pass
import torch
seen["torch_threads"] = torch.get_num_threads()
print("PROBE" + json.dumps(seen))
"""


def test_main_sets_wait_policy_before_torch_is_imported():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    line = [x for x in proc.stdout.splitlines() if x.startswith("PROBE")]
    assert line, proc.stdout + proc.stderr
    seen = json.loads(line[0][5:])
    assert seen["torch"] == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    assert seen["torch_threads"] == 1
