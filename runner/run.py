"""``--test ckpt`` / ``--test test``: plan every class, then per class train, evaluate, calibrate the decision
threshold and write the outputs; ``results.csv`` is rewritten after each class."""
from __future__ import annotations

import contextlib
import glob
from dataclasses import dataclass
from pathlib import Path

import torch

import datasets
from common import data_parallel
from common.atomic import check_writable
from common.checkpoint_io import UnsafeCheckpointError
from common.device import apply_cuda_settings, pick_device
from common.errors import UserError
from common.locking import exclusive, hold_model_folder
from common.seed import fix_seeds
from datasets.tiling import maybe_tiled
from runner.cli import Invocation
from runner.deployment import f1_max_threshold, held_out_threshold, write_deployment, HELD_OUT_QUANTILE
from runner.evaluation import compute_metrics, loader, predict_dataset
from runner.options import RunOptions
from runner.outputs import print_summary, record_run, write_eval_outputs
from runner.plan import ClassPlan, plan_class, selected_classes
from common.tensorboard_log import log_final
from runner.registry import method_class
from runner.report import dataset_images, write_class_data, write_report
from runner.results import read_results_csv, write_results_csv
from runner.selection import check_selection, prepare_selection
from runner.stored_model import reconcile, stored_description


@dataclass
class RunContext:
    """What every class of one run shares."""

    options: RunOptions
    config: object
    method_cls: type
    device: torch.device
    given: dict  # flags given on the command line: they must agree with a stored model's settings


@dataclass
class Threshold:
    value: float | None = None
    rule: str = "none"


def check_paths(options: RunOptions, method_cls) -> None:
    from datasets.offline_textures import AUGPATH_HINT

    if not options.datapath:
        raise UserError("--datapath is required (the dataset root)")
    if not Path(options.datapath).is_dir():
        raise UserError(f"--datapath: folder not found: {options.datapath}")
    if options.test == "ckpt" and options.augpath is None and method_cls.needs_augpath:
        raise UserError(f"--augpath is required for training (a texture folder for anomaly synthesis): {AUGPATH_HINT}")
    if options.test == "ckpt" and options.augpath and not Path(options.augpath).is_dir():
        raise UserError(f"--augpath: folder not found: {options.augpath}")


def run_all(invocation: Invocation, argv: list[str]) -> int:
    options = invocation.options
    method_cls = method_class(options.method)
    check_paths(options, method_cls)
    check_selection(options)
    classes = selected_classes(options)
    plans = [plan_class(options, method_cls, invocation.config, c) for c in classes]  # bad input fails here
    ctx = RunContext(options, invocation.config, method_cls, pick_device(options.gpu), invocation.given)
    results_path = Path(options.results_path)
    check_writable(results_path, "--results_path")
    record_run(results_path, options.method, argv, invocation.values)
    csv_path = results_path / "results.csv"
    print(f"{options.method} on {options.dataset}: {len(classes)} class(es), device {ctx.device}, "
          f"results in {results_path}")
    with contextlib.ExitStack() as held:  # every class's model, for the whole run: a second run stops at once
        for plan in plans:
            held.enter_context(hold_model_folder(
                method_cls.checkpoint_path(results_path, options.checkpoint_dataset, plan.name)))
        for plan in plans:
            row = run_class(ctx, plan)
            with exclusive(csv_path):  # other runs may add rows to the same results.csv meanwhile
                rows = read_results_csv(csv_path)
                rows[f"{options.dataset}_{plan.name}"] = row
                write_results_csv(csv_path, rows)
    print_summary(read_results_csv(csv_path), {f"{options.dataset}_{c}" for c in classes}, csv_path)
    print(f"report: {write_report(results_path)}")
    return 0


def run_class(ctx: RunContext, plan: ClassPlan) -> dict | None:
    """Train (with --test ckpt), evaluate and write one class's outputs; its results.csv row. Under ``--ddp 1``
    every rank trains; ranks other than 0 return None without evaluating or writing anything."""
    options = ctx.options
    ckpt = ctx.method_cls.checkpoint_path(Path(options.results_path), options.checkpoint_dataset, plan.name)
    source = Path(options.checkpoint) if options.checkpoint else ckpt
    shard = data_parallel.current()
    if shard is not None and not shard.writes:
        if options.test == "ckpt":
            train(ctx, build_model(ctx, plan, source), plan, ckpt, None)
        return None
    model = build_model(ctx, plan, source)
    pre = model.preprocessing(train=False)
    test_set = datasets.TestDataset(plan.test, pre, gt_rule=options.gt_rule, root=options.datapath) \
        if plan.test else None
    test_loader = loader(test_set, options.batch_size, options.num_workers) if test_set else None
    record = train(ctx, model, plan, ckpt, test_loader) if options.test == "ckpt" else {}
    name = f"{options.dataset}_{plan.name}"
    if not source.exists():
        raise UserError(f"--test test: no checkpoint for {name} at {source}; train first with --test ckpt "
                        f"or pass --checkpoint FILE")
    best_epoch = model.load(source, which="best").get("epoch", record.get("best_epoch"))
    if test_loader is None:
        row, threshold = evaluate_without_test_set(ctx, model, plan, pre, record, best_epoch)
        print(f"{name}: no test set; model trained and saved under {ckpt}")
    else:
        row, threshold = evaluate_on_test_set(ctx, model, plan, test_set, test_loader, source, best_epoch,
                                              record.get("epochs"))
    if options.test == "ckpt":
        row["selected_by"] = record.get("selected_by")
    log_final(ckpt, row, bool(ctx.config.tensorboard) and not options.checkpoint)
    if options.test == "ckpt":
        write_deployment(ckpt, model.description(), pre.to_dict(), threshold.value, threshold.rule)
    return row


def build_model(ctx: RunContext, plan: ClassPlan, checkpoint: Path):
    """The method's model for one class; an existing model (resumed, re-evaluated or tested) keeps its stored
    settings, and a flag that contradicts them is refused. With ``--tile`` the model is seen through tiles
    (``datasets.tiling.TiledModel``: trained on tiles under ``<results_path>/tiles``, whole images scored)."""
    fix_seeds(ctx.options.seed)
    apply_cuda_settings(ctx.device)  # after fix_seeds: --cudnn_benchmark
    config = ctx.config
    if not (ctx.options.test == "ckpt" and ctx.options.retrain) and checkpoint.exists():
        advice = "; --retrain starts over" if ctx.options.test == "ckpt" else ""
        config = reconcile(ctx.method_cls.config_class, config, ctx.given, stored_description(checkpoint), advice)
    model = ctx.method_cls.build(config, ctx.device, plan.name, ctx.options.dataset, ctx.options.augpath)
    cache = Path(ctx.options.results_path) / "tiles" / f"{ctx.options.dataset}_{plan.name}"
    return maybe_tiled(model, config.tile, config.tile_overlap, list(plan.test) or list(plan.train), cache)


def train(ctx: RunContext, model, plan: ClassPlan, ckpt: Path, test_loader) -> dict:
    """Fit (resuming an interrupted run). ``--select`` decides what the per-epoch evaluation scores: the test set
    (the reference), held-out good images + synthetic anomalies, or nothing (the last epoch is kept)."""
    options = ctx.options
    shard = data_parallel.current()
    if shard is None or shard.writes:  # --ddp 1: rank 0 owns the files
        remove_stale_temporaries(ckpt)
    on_test = None
    if test_loader is not None:
        def on_test(m):
            return compute_metrics(predict_dataset(m, test_loader, "eval"), full=False)

    def on_validation(m, validation):
        return compute_metrics(predict_dataset(m, loader(validation, options.batch_size, 0), "val"), full=False)

    selection = prepare_selection(options, model, plan.train, on_test, on_validation, plan.validation)
    record = model.fit(selection.train, ckpt, selection.evaluate, retrain=options.retrain) or {}
    return {**record, "selected_by": selection.rule}


def remove_stale_temporaries(ckpt: Path) -> None:
    """A process killed during an atomic write leaves its hidden temporary (``.<name>.*.tmp``) behind; the target
    file itself is intact. Remove such leftovers before training resumes."""
    if ckpt.is_dir():
        leftovers = list(ckpt.glob(".*.tmp"))
    else:  # an SLSG file: its folder also holds other classes' files, which other runs may be writing right now
        names = (ckpt.name, f"{ckpt.stem}_last{ckpt.suffix}", f"{ckpt.stem}.toolkit.json")
        leftovers = [p for n in names for p in ckpt.parent.glob(f".{glob.escape(n)}.*.tmp")]
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)


def evaluate_without_test_set(ctx: RunContext, model, plan: ClassPlan, pre, record: dict,
                              best_epoch) -> tuple[dict, Threshold]:
    """No test set (good images only): the threshold is a quantile of the held-out good images' scores."""
    row = {"best_epoch": best_epoch, "last_epoch": record.get("last_epoch", best_epoch)}
    if not plan.held_out:
        return row, Threshold()
    options = ctx.options
    held = datasets.TestDataset(plan.held_out, pre, gt_rule=options.gt_rule, root=options.datapath)
    scores = predict_dataset(model, loader(held, options.batch_size, options.num_workers), "held-out").scores
    return row, Threshold(held_out_threshold(scores),
                          f"quantile {HELD_OUT_QUANTILE} of {len(scores)} held-out good images")


def evaluate_on_test_set(ctx: RunContext, model, plan: ClassPlan, test_set, test_loader, source: Path,
                         best_epoch, history: list | None = None) -> tuple[dict, Threshold]:
    options = ctx.options
    pred = predict_dataset(model, test_loader)
    loco_truth = None
    if options.dataset == "loco" and all(s.label == 0 or s.defect_channels for s in plan.test):
        loco_truth = [datasets.loco_ground_truth(s) for s in plan.test]
    row = {"best_epoch": best_epoch, **compute_metrics(pred, loco_truth=loco_truth)}
    threshold = Threshold()
    if len(set(pred.labels.tolist())) == 2:
        threshold = Threshold(f1_max_threshold(pred.labels, pred.scores), "F1-max on the test set")
    elif not pred.labels.any():  # only good test images (held out from training, as plan.held_out)
        threshold = Threshold(held_out_threshold(pred.scores), f"quantile {HELD_OUT_QUANTILE} of "
                              f"{len(pred.scores)} good test images (the test set has no anomalies)")
        print(f"{options.dataset}_{plan.name}: the test set has only good images; decision threshold "
              f"{threshold.value:.4g} from the {threshold.rule}")
    pre = model.preprocessing(train=False)
    write_eval_outputs(options, pre, f"{options.dataset}_{plan.name}", plan.name, test_set, pred)
    write_class_data(Path(options.results_path), f"{options.dataset}_{plan.name}", pred, threshold.value,
                     dataset_images(test_set, pre), history)  # what report.html draws
    if not options.checkpoint:
        row.update(last_epoch_columns(model, source, test_loader, row))
    return row, threshold


def last_epoch_columns(model, source: Path, test_loader, best_row: dict) -> dict:
    """The honest numbers beside best-on-test: the metrics of the last epoch's weights."""
    try:
        last_epoch = model.load(source, which="last").get("epoch")
    except UnsafeCheckpointError:
        raise
    except (UserError, FileNotFoundError):
        return {}
    if last_epoch is None:
        return {}
    last_row = best_row if last_epoch == best_row["best_epoch"] else \
        compute_metrics(predict_dataset(model, test_loader, "last"))
    return {"last_epoch": last_epoch, "last_image_auroc": last_row["image_auroc"],
            "last_pixel_auroc": last_row["pixel_auroc"], "last_au_pro": last_row.get("au_pro")}
