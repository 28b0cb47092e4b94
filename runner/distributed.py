"""The ranks of a ``torchrun`` launch as this toolkit uses them: who am I, which device is mine, and a shared work
queue, reports and a barrier through the process group's key-value store.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them a run is one process (``SingleProcess``)
and nothing here touches torch.distributed. The process group is gloo on the CPU and NCCL on GPUs; the unit queue
only needs its store (``store.add`` is atomic across ranks and machines), so a rank that trains for hours never
waits inside a collective with a timeout.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Sequence

import torch

from common.device import pick_device
from runner.scale_options import launched_by_torchrun

# A rank may wait for the others' last units for as long as they train: far beyond torch's 30-minute default.
LONG_WAIT = timedelta(days=7)
POLL_SECONDS = 0.5


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def rank_device(gpu: Sequence[int] | None, local_rank: int) -> torch.device:
    """A GPU run (``--gpu`` >= 0 and CUDA present) gives each rank ``cuda:<local rank mod device count>``, so several
    ranks may share a GPU; otherwise the CPU."""
    wanted = pick_device(gpu)
    if wanted.type != "cuda":
        return wanted
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device(f"cuda:{index}")


def cpu_threads_per_rank(local_world_size: int, requested: int = 0) -> int:
    """``--threads`` when given, else this machine's usable CPUs shared evenly among the ranks on it."""
    return requested if requested > 0 else max(1, usable_cpus() // max(1, local_world_size))


@dataclass
class SingleProcess:
    """A run without torchrun: rank 0 of 1, the queue is a counter, nothing to wait for."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    host: str = field(default_factory=socket.gethostname)
    _next: int = 0
    _shared: dict = field(default_factory=dict)
    _reports: list = field(default_factory=list)

    def share(self, key: str, value) -> None:
        self._shared[key] = value

    def receive(self, key: str):
        return self._shared[key]

    def next_index(self) -> int:
        self._next += 1
        return self._next - 1

    def report(self, records: list[dict]) -> None:
        self._reports = list(records)

    def gather_reports(self) -> list[dict]:
        return list(self._reports)

    def close(self) -> None:
        pass


class TorchrunWorld:
    """One rank of a torchrun launch (gloo on CPU, NCCL on GPU), with the store-based queue and barrier."""

    def __init__(self, gpu: Sequence[int] | None, threads: int = 0):
        import torch.distributed as dist

        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        self.host = socket.gethostname()
        self.device = rank_device(gpu, self.local_rank)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads_per_rank(self.local_world_size, threads))
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=LONG_WAIT,
                                    device_id=self.device if self.device.type == "cuda" else None)
        from torch.distributed import distributed_c10d

        # keys are per launch attempt: torchrun's restarts (--max-restarts) reuse the agent's store
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self.store = dist.PrefixStore(f"glass_units/{attempt}/", distributed_c10d._get_default_store())

    def share(self, key: str, value) -> None:
        self.store.set(key, json.dumps(value))

    def receive(self, key: str):
        self.store.wait([key], LONG_WAIT)
        return json.loads(self.store.get(key))

    def next_index(self) -> int:
        return int(self.store.add("next", 1)) - 1

    def report(self, records: list[dict]) -> None:
        """Publish this rank's unit records and arrive at the barrier."""
        self.store.set(f"report/{self.rank}", json.dumps(records))
        self.store.add("arrived", 1)

    def gather_reports(self) -> list[dict]:
        """Rank 0: wait until every rank has reported (the barrier), then all their records."""
        while int(self.store.add("arrived", 0)) < self.world_size:
            time.sleep(POLL_SECONDS)
        return [r for rank in range(self.world_size) for r in json.loads(self.store.get(f"report/{rank}"))]

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join(gpu: Sequence[int] | None, threads: int = 0) -> SingleProcess | TorchrunWorld:
    """This process's place in the run: a torchrun rank when launched by torchrun, else the single process."""
    if launched_by_torchrun():
        return TorchrunWorld(gpu, threads)
    if threads > 0:
        torch.set_num_threads(threads)
    return SingleProcess(pick_device(gpu))
