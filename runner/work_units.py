"""Work units — (class, seed) pairs — spread over the ranks of a ``torchrun`` launch, or run one after another in
one process for ``--seeds`` / ``--class_index``.

Layout: without ``--seeds`` everything goes to ``--results_path`` as in a plain run; with ``--seeds`` each seed has
its own results folder ``<results_path>/seed_<s>`` (as ``shell/run-seeds.sh`` always did) and
``<results_path>/seeds_summary.csv`` summarises them. Each finished unit leaves
``<folder>/units/<dataset>_<class>.json`` (its ``results.csv`` row, where and how long it ran, and a fingerprint of the settings); a rerun of the same command
skips those units and resumes the others from their checkpoints. Rank 0 merges the unit files into ``results.csv``
once every rank is done (under a file lock, so concurrent ``--class_index`` jobs of a Slurm array merge safely).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_text, check_writable
from common.errors import UserError
from runner import distributed
from runner.cli import Invocation
from runner.options import RunOptions
from runner.outputs import print_summary, record_run
from runner.plan import ClassPlan, plan_class, selected_classes
from runner.registry import method_class
from runner.results import read_results_csv, write_results_csv
from runner.run import RunContext, check_paths, run_class
from runner.seeds import summarize, write_summary
from runner.unit_log import prefixed_output, unit_prefix

# Flags that do not change a unit's result: a rerun that differs only in them still skips finished units.
NOT_IN_FINGERPRINT = {"num_workers", "gpu", "config", "seeds", "class_index", "threads", "retrain", "heatmaps",
                      "save_maps", "input", "output", "threshold", "method_given", "results_path"}


@dataclass(frozen=True)
class WorkUnit:
    cls_name: str
    seed: int
    folder: str  # the results folder of this unit's seed

    def name(self, dataset: str) -> str:
        return f"{dataset}_{self.cls_name}"


def unit_file(folder: Path, name: str) -> Path:
    return folder / "units" / f"{name}.json"


def fingerprint(values: dict, seed: int, cls_name: str) -> str:
    kept = {k: v for k, v in values.items() if k not in NOT_IN_FINGERPRINT}
    if not kept.get("ddp"):  # runs without --ddp keep the fingerprints they had before the flag existed
        kept.pop("ddp", None)
    kept.update(seed=seed, classes=[cls_name])
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_row(path: Path, expected_fingerprint: str) -> dict | None:
    """The stored row of a unit finished with the same settings, else None."""
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return record["row"] if record.get("fingerprint") == expected_fingerprint else None


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_unit_file(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, default=_plain, allow_nan=True) + "\n")


def unit_options(invocation: Invocation, seed: int, folder: Path) -> tuple[RunOptions, object, dict]:
    """The options, method config and given flags of one seed's run, as a plain run with ``--seed`` gives them."""
    values = {**invocation.values, "seed": seed, "results_path": str(folder)}
    options = RunOptions.from_flags(values)
    config = method_class(options.method).config_class.from_flags(values)
    given = dict(invocation.given)
    if invocation.values.get("seeds") is not None:
        given["seed"] = seed
    given.pop("seeds", None)
    return options, config, given


def check_unit_flags(invocation: Invocation) -> list[int]:
    values = invocation.values
    seeds = values.get("seeds")
    if seeds is None:
        return [invocation.options.seed]
    if "seed" in invocation.given:
        raise UserError("--seed and --seeds: give one of them")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    if invocation.options.checkpoint:
        raise UserError("--seeds with --checkpoint: one checkpoint is one seed's model; drop --seeds")
    return list(seeds)


def pick_classes(classes: list[str], class_index: int | None) -> list[str]:
    if class_index is None:
        return classes
    if not 0 <= class_index < len(classes):
        raise UserError(f"--class_index {class_index}: must be in 0..{len(classes) - 1} "
                        f"({len(classes)} class(es) selected)")
    return [classes[class_index]]


@dataclass
class Planned:
    seeds: list[int]
    folders: list[Path]  # one results folder per seed
    all_classes: list[str]  # the selected classes (before --class_index)
    units: list[WorkUnit]
    plans: dict[WorkUnit, ClassPlan]


def plan_units(invocation: Invocation) -> Planned:
    """Every unit is planned (and bad input refused) before anything runs."""
    values = invocation.values
    seeds = check_unit_flags(invocation)
    if values.get("threads", 0) < 0:
        raise UserError(f"--threads must be >= 0, got {values['threads']}")
    root = Path(invocation.options.results_path)
    method_cls = method_class(invocation.options.method)
    check_paths(invocation.options, method_cls)
    all_classes = selected_classes(invocation.options)
    classes = pick_classes(all_classes, values.get("class_index"))
    folders = [root / f"seed_{seed}" if values.get("seeds") is not None else root for seed in seeds]
    units: list[WorkUnit] = []
    plans: dict[WorkUnit, ClassPlan] = {}
    for seed, folder in zip(seeds, folders):
        options, config, _ = unit_options(invocation, seed, folder)
        for cls_name in classes:
            unit = WorkUnit(cls_name, seed, str(folder))
            units.append(unit)
            plans[unit] = plan_class(options, method_cls, config, cls_name)
    return Planned(seeds, folders, all_classes, units, plans)


def run_units(invocation: Invocation, argv: list[str]) -> int:
    values = invocation.values
    try:
        planned = plan_units(invocation)
    except UserError:
        if os.environ.get("RANK", "0") != "0":
            return 2  # every rank finds the same bad input: rank 0 alone says so
        raise
    several = values.get("seeds") is not None
    seeds, folders, units, plans = planned.seeds, planned.folders, planned.units, planned.plans
    world = distributed.join(invocation.options.gpu, values.get("threads", 0))
    try:
        if world.rank == 0:
            for folder in folders:
                check_writable(folder, "--results_path")
                record_run(folder, invocation.options.method, argv, values)
            pending = [i for i, u in enumerate(units) if invocation.options.retrain or finished_row(
                unit_file(Path(u.folder), u.name(invocation.options.dataset)),
                fingerprint(values, u.seed, u.cls_name)) is None]
            print(f"{invocation.options.method} on {invocation.options.dataset}: {len(units)} unit(s) "
                  f"(class x seed), {len(units) - len(pending)} already finished, {len(pending)} to run on "
                  f"{world.world_size} rank(s)", flush=True)
            world.share("pending", pending)
        pending = world.receive("pending")
        if values.get("ddp") and world.world_size > 1:
            records = run_shared_units(world, invocation, units, plans, pending)
        else:
            records = run_my_units(world, invocation, argv, units, plans, pending)
        world.report(records)
        if world.rank == 0:
            records = world.gather_reports()
            merge(invocation, folders, seeds, planned.all_classes, several)
            print_unit_summary(records, units, pending, invocation.options.dataset)
        return exit_status(records)
    finally:
        world.close()


def exit_status(records: list[dict]) -> int:
    """0 when every unit ran; 2 when the failures were all bad input (as a plain run); 1 otherwise."""
    failed = [r for r in records if r["status"] == "failed"]
    if not failed:
        return 0
    return 2 if all(r.get("bad_input") for r in failed) else 1


def run_my_units(world, invocation: Invocation, argv: list[str], units: list[WorkUnit],
                 plans: dict[WorkUnit, ClassPlan], pending: list[int]) -> list[dict]:
    """Take units from the shared queue until it is empty; each is run as a plain run of that class and seed."""
    method_cls = method_class(invocation.options.method)
    dataset = invocation.options.dataset
    records = []
    while (index := world.next_index()) < len(pending):
        unit = units[pending[index]]
        name = unit.name(dataset)
        options, config, given = unit_options(invocation, unit.seed, Path(unit.folder))
        ctx = RunContext(options, config, method_cls, world.device, given)
        record = {"unit": f"{name}/{unit.seed}", "rank": world.rank, "host": world.host,
                  "device": str(world.device)}
        started = time.time()
        with prefixed_output(unit_prefix(world.rank, name, unit.seed)):
            try:
                row = run_class(ctx, plans[unit])
            except Exception as error:  # one failed unit does not stop this rank's others
                print(f"error: {error}" if isinstance(error, UserError) else traceback.format_exc().rstrip())
                record.update(status="failed", seconds=round(time.time() - started, 3), error=str(error),
                              bad_input=isinstance(error, UserError))
                records.append(record)
                continue
        record.update(status="ran", seconds=round(time.time() - started, 3))
        write_unit_file(unit_file(Path(unit.folder), name),
                        {**record, "fingerprint": fingerprint(invocation.values, unit.seed, unit.cls_name),
                         "row": row})
        records.append(record)
    return records


def run_shared_units(world, invocation: Invocation, units: list[WorkUnit], plans: dict[WorkUnit, ClassPlan],
                     pending: list[int]) -> list[dict]:
    """``--ddp 1``: every rank trains every pending unit together, one after another (each on its share of every
    batch); rank 0 evaluates and writes the unit's outputs and unit file, the others wait at a barrier."""
    import torch.distributed as dist

    from common import data_parallel

    method_cls = method_class(invocation.options.method)
    dataset = invocation.options.dataset
    shard = data_parallel.Shard(world.rank, world.world_size, dist.new_group(timeout=distributed.LONG_WAIT))
    records = []
    for index in pending:
        unit = units[index]
        name = unit.name(dataset)
        options, config, given = unit_options(invocation, unit.seed, Path(unit.folder))
        ctx = RunContext(options, config, method_cls, world.device, given)
        record = {"unit": f"{name}/{unit.seed}", "rank": world.rank, "host": world.host,
                  "device": f"{world.device} x{world.world_size}"}
        started = time.time()
        with prefixed_output(unit_prefix(world.rank, name, unit.seed)), data_parallel.active(shard):
            try:
                row = run_class(ctx, plans[unit])
            except UserError as error:  # bad input or divergence: every rank finds it at the same point
                print(f"error: {error}")
                record.update(status="failed", seconds=round(time.time() - started, 3), error=str(error),
                              bad_input=True)
                records.append(record)
                continue
            data_parallel.barrier(shard)  # the other ranks wait while rank 0 evaluates and writes
        record.update(status="ran", seconds=round(time.time() - started, 3))
        if shard.writes:
            write_unit_file(unit_file(Path(unit.folder), name),
                            {**record, "fingerprint": fingerprint(invocation.values, unit.seed, unit.cls_name),
                             "row": row})
            records.append(record)
    return records


def merge(invocation: Invocation, folders: list[Path], seeds: list[int], classes: list[str], several: bool) -> None:
    """Each seed folder's ``results.csv`` gets a row for every selected class whose unit has finished with these
    settings — whichever run, rank or array task finished it — in the order a plain run writes them; rows of other
    classes from earlier runs are kept in front, as in a plain run. With several seeds, ``seeds_summary.csv``."""
    from filelock import FileLock

    dataset = invocation.options.dataset
    for folder, seed in zip(folders, seeds):
        csv_path = folder / "results.csv"
        with FileLock(str(folder / ".results.csv.lock")):
            earlier = read_results_csv(csv_path)
            finished = {}
            for cls_name in classes:
                name = f"{dataset}_{cls_name}"
                row = finished_row(unit_file(folder, name), fingerprint(invocation.values, seed, cls_name))
                if row is not None:
                    finished[name] = row
            rows = {**{k: v for k, v in earlier.items() if k not in finished}, **finished}
            if rows:
                write_results_csv(csv_path, rows)
        print_summary(rows, set(finished), csv_path)
    if several:
        done = [f for f in folders if (f / "results.csv").is_file()]
        if done:
            out = write_summary(summarize(done), Path(invocation.options.results_path) / "seeds_summary.csv")
            print(f"seeds summary ({len(done)} seed(s)): {out}")


def print_unit_summary(records: list[dict], units: list[WorkUnit], pending: list[int], dataset: str) -> None:
    ran = {r["unit"]: r for r in records}
    print("\nwork units:")
    print(f"{'unit':<36}{'status':>9}{'rank':>6}  {'host':<16}{'device':<10}{'seconds':>10}")
    for index, unit in enumerate(units):
        key = f"{unit.name(dataset)}/{unit.seed}"
        r = ran.get(key)
        if r is None:
            status = "skipped" if index not in pending else "not run"
            print(f"{key:<36}{status:>9}")
        else:
            print(f"{key:<36}{r['status']:>9}{r['rank']:>6}  {r['host']:<16}{r['device']:<10}{r['seconds']:>10.1f}")
    busy = [r["seconds"] for r in records]
    if busy:
        print(f"{len(busy)} unit(s) run, {sum(busy):.1f} s of unit time in all", flush=True)
    sys.stdout.flush()
