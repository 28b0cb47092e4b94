"""CPU thread settings that must be made before torch (and its OpenMP runtime) starts.

On a shared machine OpenMP threads that spin-wait between parallel regions compete with other processes for the
same cores and make a run several times slower (issue 13). So, before ``import torch``:

* ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning) unless the user chose a policy;
* the intra-op thread count is the number of CPUs this process may actually use: its affinity mask, capped by the
  cgroup (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``) quota, not ``os.cpu_count()``; ``--threads N`` overrides it.

Data-loading workers get one thread each (``worker_init``). This module imports nothing heavy (no torch, numpy).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 cpu-controller path) of this process from /proc/self/cgroup lines ``id:controllers:path``."""
    v2 = v1 = None
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(root: Path, path: str) -> list[Path]:
    """root/path and every parent folder up to root (a quota set on a parent limits its children)."""
    rel = Path(path.lstrip("/"))
    folders = [root / rel]
    while rel != rel.parent and str(rel) not in ("", "."):
        rel = rel.parent
        folders.append(root / rel)
    return list(dict.fromkeys(folders))


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if not text:
        return None
    fields = text.split()
    if fields[0] == "max" or len(fields) < 2:
        return None
    quota, period = float(fields[0]), float(fields[1])
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs' worth of time the cgroup quota allows (e.g. 1.5), the smallest along the hierarchy; None = no quota."""
    v2, v1 = _cgroup_paths(proc_cgroup)
    limits: list[float] = []
    if v2 is not None:
        limits += [q for f in _ancestors(root, v2) if (q := _v2_quota(f)) is not None]
    if v1 is not None:
        for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
            if (root / mount).is_dir():
                limits += [q for f in _ancestors(root / mount, v1) if (q := _v1_quota(f)) is not None]
                break
    return min(limits) if limits else None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """CPUs this process may use: the affinity mask, capped by the cgroup quota (rounded up, at least 1)."""
    count = affinity_cpus()
    quota = cgroup_cpu_limit(root, proc_cgroup)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def threads_from_argv(argv: list[str]) -> int | None:
    """The value of ``--threads N`` / ``--threads=N`` in argv (0 or absent or unparsable = automatic)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
    try:
        n = int(value) if value is not None else 0
    except ValueError:
        return None  # argparse reports the bad value later
    return n if n > 0 else None


def configure_early(argv: list[str], environ: dict | None = None) -> int:
    """Call before torch is imported. Sets the wait policy and the OpenMP/MKL thread count; returns the count.

    An explicit ``--threads`` wins; otherwise a user-set ``OMP_NUM_THREADS`` is kept; otherwise ``usable_cpus()``.
    """
    env = os.environ if environ is None else environ
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    explicit = threads_from_argv(argv)
    if explicit is not None:
        count = explicit
    else:
        try:
            count = int(env["OMP_NUM_THREADS"])
        except (KeyError, ValueError):
            count = usable_cpus()
    if explicit is not None or "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(count)
        env.setdefault("MKL_NUM_THREADS", str(count))
    return count


def apply(threads: int | None) -> int:
    """Set torch's intra-op thread count (None/0 = automatic, as ``configure_early``); returns it."""
    import torch

    count = threads if threads and threads > 0 else None
    if count is None:
        try:
            count = int(os.environ["OMP_NUM_THREADS"])
        except (KeyError, ValueError):
            count = usable_cpus()
    torch.set_num_threads(count)
    return count


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one intra-op thread per data-loading worker process."""
    import torch

    torch.set_num_threads(1)
