"""The scale-out flags (``--seeds``, ``--class_index``) and which runs go through the work units
(``runner/work_units.py``). Kept free of heavy imports: the parser is built before anything runs."""
from __future__ import annotations

import argparse
import os

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale out (README: 'Scale out')")
    group.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="several seeds: one results folder per seed (<results_path>/seed_<s>) and "
                            "seeds_summary.csv; under torchrun the (class, seed) units are spread over the ranks")
    group.add_argument("--class_index", type=int, default=None,
                       help="run only the i-th (0-based) of the selected classes, e.g. $SLURM_ARRAY_TASK_ID")
    group.add_argument("--ddp", type=int, choices=(0, 1), default=0,
                       help="1 under torchrun: every rank trains the same model (GLASS only), each on its share of "
                            "every batch (DistributedDataParallel heads; global batch = --batch_size); rank 0 "
                            "evaluates and writes. Without torchrun: ignored (one process)")
    # --threads (runner/cli.py) also sets each rank's threads; 0 shares the usable CPUs evenly among a machine's ranks


def wants_units(values: dict) -> bool:
    """A torchrun launch, ``--seeds`` or ``--class_index`` runs work units; anything else is the plain run."""
    return launched_by_torchrun() or values.get("seeds") is not None or values.get("class_index") is not None
