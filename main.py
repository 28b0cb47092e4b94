"""Train and evaluate GLASS or SLSG: the one command-line entry point.

    python main.py --method glass --dataset mvtec --datapath DATA --augpath DTD/images --classes carpet --test ckpt

This file is the only place that wires datasets, methods and metrics together (see docs/CONTRACTS.md).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, errno.EDQUOT}
METHODS = {"glass": "glass.method", "slsg": "slsg.method"}
TEST_MODES = ("ckpt", "test", "predict")


def _method_class(name: str):
    module = importlib.import_module(METHODS[name])
    if hasattr(module, "METHOD"):
        return module.METHOD
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "name", None) == name and hasattr(value, "predict"):
            return value
    raise ImportError(f"{METHODS[name]} defines no method class named {name!r}")


def build_parser(method: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", conflict_handler="resolve",
        description="Industrial anomaly detection: train and evaluate GLASS (ECCV 2024) or SLSG (PR 2024).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    common = parser.add_argument_group("common")
    common.add_argument("--method", choices=sorted(METHODS), default="glass", help="which method to run")
    common.add_argument("--test", default="ckpt", choices=TEST_MODES,
                        help="ckpt: train (resuming an interrupted run) then evaluate; test: evaluate the "
                             "checkpoints under --results_path; predict: score --input images with --checkpoint")
    common.add_argument("--dataset", default="mvtec",
                        help="mvtec | visa | mpdd | wfdd | mad-man | mad-sys | loco | folder")
    common.add_argument("--datapath", help="dataset root (the folder that holds the class folders)")
    common.add_argument("--augpath", help="texture folder for anomaly synthesis (DTD: <dtd>/images)")
    common.add_argument("--classes", "-d", "--subdatasets", action="append", default=None,
                        help="class to run (repeat the flag for several); default: every class under --datapath")
    common.add_argument("--results_path", default="results", help="where checkpoints, CSVs and maps go")
    common.add_argument("--gpu", type=int, action="append", default=None,
                        help="CUDA device index (the first is used); -1 or no GPU available = CPU")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--batch_size", type=int, default=8)
    common.add_argument("--num_workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="data-loading worker processes (0 = load in the main process)")
    common.add_argument("--gt_rule", choices=("half", "glass", "nonzero"), default="half",
                        help="binarisation of resized ground truth: >=0.5 (toolkit), ==1.0 (GLASS MVTec), >0 (VisA)")
    common.add_argument("--mask_pairing", choices=("stem", "order"), default="stem",
                        help="pair test images with masks by file stem, or by sorted position (the reference)")
    common.add_argument("--save_maps", action="store_true",
                        help="write scores.csv, maps.npz and tiff/ per class under <results_path>/eval/")
    common.add_argument("--heatmaps", type=int, default=1, help="1: write heat-map PNGs of the test set")
    common.add_argument("--checkpoint", help="a checkpoint file (or folder) to evaluate / predict with")
    common.add_argument("--input", help="--test predict: an image, a folder (searched recursively) or a glob")
    common.add_argument("--output", default="results/predictions", help="--test predict: where results go")
    common.add_argument("--threshold", type=float, default=None,
                        help="--test predict: decision threshold (default: the one stored at training time)")
    common.add_argument("--holdout", type=float, default=0.1,
                        help="share of good training images held out for the threshold when there is no test set")
    common.add_argument("--retrain", action="store_true",
                        help="with --test ckpt: start over even if an interrupted run's checkpoint exists")
    common.add_argument("--keep_aspect", type=int, default=0, choices=(0, 1),
                        help="1: fit the whole image inside the input and pad (nothing cropped); 0: the reference")
    common.add_argument("--tile", type=int, default=0,
                        help="train on and score SIZE x SIZE tiles of large images, maps stitched (0: off)")
    common.add_argument("--tile_overlap", type=int, default=0, help="overlap of neighbouring tiles in pixels")
    common.add_argument("--select", choices=("test", "val", "last"), default="test",
                        help="which epoch is kept: best on the test set (reference), best on held-out good images "
                             "+ synthetic anomalies (no test label read), or the last")
    common.add_argument("--val_share", type=float, default=0.2, help="--select val: share of good images held out")
    common.add_argument("--val_anomalies", type=int, default=1,
                        help="--select val: synthetic anomalies per held-out image")
    if method:
        try:
            method_cls = _method_class(method)
        except ModuleNotFoundError as error:
            parser.epilog = f"(the {method} method is not available in this installation: {error})"
        else:
            method_cls.add_arguments(parser)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default="glass")
    known, _ = pre.parse_known_args(argv)
    if known.method not in METHODS:
        from common.errors import UserError

        raise UserError(f"--method: unknown method {known.method!r}; choose from {', '.join(sorted(METHODS))}")
    args = build_parser(known.method).parse_args(argv)
    args.method_given = any(a == "--method" or a.startswith("--method=") for a in argv)
    return args


def _loader(dataset, batch_size: int, num_workers: int, shuffle: bool = False):
    import torch

    kwargs = dict(batch_size=batch_size, shuffle=shuffle, num_workers=num_workers)
    if num_workers > 0:
        kwargs.update(prefetch_factor=2, persistent_workers=False)
    return torch.utils.data.DataLoader(dataset, **kwargs)


def predict_dataset(model, loader, desc: str = "test"):
    """Run the model over a test loader; maps are streamed into one preallocated float32 array."""
    from tqdm import tqdm

    from common.results import Predictions

    n = len(loader.dataset)
    maps = masks = None
    scores = np.zeros(n, np.float64)
    labels = np.zeros(n, np.int64)
    paths: list[str] = []
    kinds: list[str] = []
    start = 0
    for batch in tqdm(loader, desc=desc, leave=False, disable=None):
        batch_scores, batch_maps = model.predict(batch["image"])
        b = len(batch_scores)
        if maps is None:
            h, w = batch_maps.shape[-2:]
            maps = np.zeros((n, h, w), np.float32)
            masks = np.zeros((n, h, w), np.uint8)
        maps[start:start + b] = batch_maps
        gt = batch["mask"].numpy()[:, 0]
        if gt.shape[-2:] != maps.shape[-2:]:
            raise RuntimeError(f"map size {maps.shape[-2:]} differs from mask size {gt.shape[-2:]}")
        masks[start:start + b] = gt > 0.5
        scores[start:start + b] = batch_scores
        labels[start:start + b] = batch["label"].numpy()
        paths.extend(batch["image_path"])
        kinds.extend(batch["anomaly_type"])
        start += b
    return Predictions(paths, kinds, labels, scores, maps, masks)


def compute_metrics(pred, full: bool = True, loco_truth: list | None = None) -> dict:
    """The metric row of one evaluation. ``full=False``: only what the per-epoch selection needs (as the
    reference: image and pixel AUROC). ``loco_truth``: per test image, the LOCO defect channels at the original
    resolution (``datasets.loco_ground_truth``); adds the logical / structural image AUROCs and AU-sPRO."""
    import metrics

    if not full:
        nan = float("nan")
        both = len(set(pred.labels.tolist())) == 2
        pixels = bool(pred.masks.any()) and not bool(pred.masks.all())
        return {"image_auroc": metrics.image_auroc(pred.labels, pred.scores) if both else nan,
                "pixel_auroc": metrics.pixel_auroc(pred.masks, pred.maps) if pixels else nan}
    row = metrics.evaluate_all(pred.labels, pred.scores, pred.masks, pred.maps)
    kinds = list(pred.anomaly_types)
    if {"logical_anomalies", "structural_anomalies"} <= set(kinds):
        classification = metrics.loco_classification(kinds, pred.scores)
        row["image_auroc_logical"] = classification["logical_anomalies"]
        row["image_auroc_structural"] = classification["structural_anomalies"]
        if loco_truth is not None:
            import cv2

            maps, channels = [], []
            for anomaly_map, truth in zip(pred.maps, loco_truth):
                h, w = truth.merged.shape
                maps.append(cv2.resize(anomaly_map, (w, h), interpolation=cv2.INTER_LINEAR))
                channels.append([(c.mask, c.saturation_area) for c in truth.channels])
            spro = metrics.loco_localization(maps, kinds, channels, limits=(0.05,))
            row["au_spro_logical"] = spro["logical_anomalies"]["0.05"]
            row["au_spro_structural"] = spro["structural_anomalies"]["0.05"]
            row["au_spro_mean"] = spro["mean"]["0.05"]
    return row


def _write_eval_outputs(args, model, name: str, cls_name: str, dataset, pred) -> Path:
    from common.results import denormalize, heatmap_panel, save_heatmap, save_maps

    out_dir = Path(args.results_path) / "eval" / name
    if args.heatmaps:
        pre = model.preprocessing(train=False)
        value_range = (float(pred.maps.min()), float(pred.maps.max()))
        for index in range(len(dataset)):
            item = dataset[index]
            rgb = denormalize(item["image"].numpy(), pre.mean, pre.std)
            panel = heatmap_panel(rgb, pred.masks[index], pred.maps[index], value_range)
            save_heatmap(out_dir / f"{index + 1:03d}.png", panel)
    if args.save_maps:
        save_maps(out_dir, cls_name, pred, model.preprocessing(train=False), [s.image_path for s in dataset.samples])
    return out_dir


@dataclass
class ClassPlan:
    """What one class will run on, listed (and validated) before any training starts."""

    name: str
    train: list
    test: list
    held_out: list  # good training images kept for the threshold when there is no test set


def _remove_stale_temporaries(ckpt_dir: Path) -> None:
    """A process killed during an atomic write leaves its hidden temporary (``.<name>.*.tmp``) behind; the target
    file itself is intact. Remove such leftovers before training resumes."""
    folder = ckpt_dir if ckpt_dir.is_dir() else ckpt_dir.parent
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def _wants_fg_masks(method_cls, args, cls_name: str) -> bool:
    decide = getattr(method_cls, "wants_fg_masks", None)
    return bool(decide(args, cls_name)) if decide else False


def checkpoint_dataset(dataset: str) -> str:
    """MAD-man / MAD-sys are test-only: they evaluate the MVTec AD models (``mvtec_<class>``), as the reference."""
    return "mvtec" if dataset in ("mad-man", "mad-sys") else dataset


def plan_class(args, method_cls, cls_name: str) -> ClassPlan:
    import datasets
    from common.errors import UserError

    test: list = []
    try:
        test = datasets.load_samples(args.dataset, args.datapath, cls_name, "test", mask_pairing=args.mask_pairing)
    except UserError:
        if args.dataset != "folder":
            raise
    train, held_out = [], []
    if args.test == "ckpt":
        train = datasets.load_samples(args.dataset, args.datapath, cls_name, "train",
                                      fg=_wants_fg_masks(method_cls, args, cls_name))
        if not test and len(train) >= 4:
            order = np.random.default_rng(args.seed).permutation(len(train))
            n_held = max(2, int(round(args.holdout * len(train))))
            held_out = [train[i] for i in sorted(order[:n_held])]
            train = [train[i] for i in sorted(order[n_held:])]
    return ClassPlan(cls_name, train, test, held_out)


def run_class(args, method_cls, device, plan: ClassPlan) -> dict:
    import datasets
    from datasets.tiling import maybe_tiled
    from selection import prepare_selection
    from common.deployment import f1_max_threshold, held_out_threshold, write_deployment
    from common.errors import UserError
    from common.seed import fix_seeds

    fix_seeds(args.seed)
    cls_name = plan.name
    name = f"{args.dataset}_{cls_name}"
    model = method_cls.from_args(args, device, cls_name)
    ckpt_dir = method_cls.checkpoint_dir(Path(args.results_path), checkpoint_dataset(args.dataset), cls_name)
    model = maybe_tiled(model, args, plan.train, plan.test, Path(args.results_path) / "tiles" / name)
    pre = model.preprocessing(train=False)
    test_set = datasets.TestDataset(plan.test, pre, gt_rule=args.gt_rule, root=args.datapath) if plan.test else None
    test_loader = _loader(test_set, args.batch_size, args.num_workers) if test_set else None

    record: dict = {}
    if args.test == "ckpt":
        _remove_stale_temporaries(ckpt_dir)
        evaluate = (lambda m: compute_metrics(predict_dataset(m, test_loader, "eval"), full=False)) \
            if test_loader is not None else None
        selection = prepare_selection(args, model, plan.train, evaluate, lambda m, validation: compute_metrics(
            predict_dataset(m, _loader(validation, args.batch_size, 0), "val"), full=False))
        record = model.fit(selection.train, ckpt_dir, selection.evaluate) or {}
    source = Path(args.checkpoint) if args.checkpoint else ckpt_dir
    if not source.exists():
        raise UserError(f"--test test: no checkpoint for {name} at {source}; train first with --test ckpt "
                        f"or pass --checkpoint FILE")
    info = model.load(source, which="best")
    row: dict = {"best_epoch": info.get("epoch", record.get("best_epoch"))}
    if args.test == "ckpt":
        row["selected_by"] = selection.rule
    threshold, rule = None, "none"
    if test_loader is None:
        row["last_epoch"] = record.get("last_epoch", row["best_epoch"])
        if plan.held_out:
            held = datasets.TestDataset(plan.held_out, pre, gt_rule=args.gt_rule, root=args.datapath)
            scores = predict_dataset(model, _loader(held, args.batch_size, args.num_workers), "held-out").scores
            threshold = held_out_threshold(scores)
            rule = f"quantile {0.99} of {len(scores)} held-out good images"
        print(f"{name}: no test set; model trained and saved under {ckpt_dir}")
    else:
        pred = predict_dataset(model, test_loader)
        loco_truth = None
        if args.dataset == "loco" and all(s.label == 0 or s.defect_channels for s in plan.test):
            loco_truth = [datasets.loco_ground_truth(s) for s in plan.test]
        row.update(compute_metrics(pred, loco_truth=loco_truth))
        if len(set(pred.labels.tolist())) == 2:
            threshold, rule = f1_max_threshold(pred.labels, pred.scores), "F1-max on the test set"
        out_dir = _write_eval_outputs(args, model, name, cls_name, test_set, pred)
        last_row, last_epoch = None, None
        if not args.checkpoint:
            try:
                last_epoch = model.load(source, which="last").get("epoch")
            except (UserError, FileNotFoundError):
                last_epoch = None
            if last_epoch is not None:
                last_row = row if last_epoch == row["best_epoch"] else \
                    compute_metrics(predict_dataset(model, test_loader, "last"))
        if last_row is not None:
            row.update(last_epoch=last_epoch, last_image_auroc=last_row["image_auroc"],
                       last_pixel_auroc=last_row["pixel_auroc"], last_au_pro=last_row.get("au_pro"))
        if args.heatmaps or args.save_maps:
            print(f"{name}: {'heat maps' if args.heatmaps else 'maps'} in {out_dir}")
    if args.test == "ckpt":
        stored = {**vars(args), "class_name": cls_name}
        write_deployment(ckpt_dir, args.method, stored, pre.to_dict(), threshold, rule)
    return row


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from common.errors import UserError

    try:
        args = parse_args(argv)
        return _run(args, argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot write{where}: {error.strerror} (nothing half-written was left; free space or choose "
              f"another --results_path / --output)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are complete; --test ckpt resumes", file=sys.stderr)
        return 130


def _run(args, argv) -> int:
    import datasets
    from common.atomic import check_writable
    from common.device import pick_device
    from common.errors import UserError
    from common.results import format_table, read_results_csv, write_results_csv, write_run_record

    method_cls = _method_class(args.method)
    if args.test == "predict":
        from common.predict import run_predict

        return run_predict(args, method_cls)
    if not args.datapath:
        raise UserError("--datapath is required (the dataset root)")
    if not Path(args.datapath).is_dir():
        raise UserError(f"--datapath: folder not found: {args.datapath}")
    if args.test == "ckpt" and getattr(args, "augpath", None) is None and getattr(method_cls, "needs_augpath", True):
        from datasets.offline_textures import AUGPATH_HINT

        raise UserError(f"--augpath is required for training (a texture folder for anomaly synthesis): {AUGPATH_HINT}")
    if args.test == "ckpt" and args.augpath and not Path(args.augpath).is_dir():
        raise UserError(f"--augpath: folder not found: {args.augpath}")
    available = datasets.list_classes(args.dataset, args.datapath)
    classes = args.classes or available
    if args.checkpoint and len(classes) != 1:
        raise UserError("--checkpoint names one model: give exactly one --classes")
    unknown = [c for c in classes if c not in available]
    if unknown:
        raise UserError(f"--classes: unknown class(es) {', '.join(unknown)} under {args.datapath}; "
                        f"available: {', '.join(available)}")
    plans = [plan_class(args, method_cls, cls_name) for cls_name in classes]  # bad input fails before training
    device = pick_device(args.gpu)
    results_path = Path(args.results_path)
    check_writable(results_path, "--results_path")
    write_run_record(results_path / f"run_{args.method}_{time.strftime('%Y%m%d-%H%M%S')}.json", argv, vars(args))
    csv_path = results_path / "results.csv"
    rows = read_results_csv(csv_path)
    print(f"{args.method} on {args.dataset}: {len(classes)} class(es), device {device}, results in {results_path}")
    for plan in plans:
        row = run_class(args, method_cls, device, plan)
        rows[f"{args.dataset}_{plan.name}"] = row
        write_results_csv(csv_path, rows)
    shown = ["image_auroc", "pixel_auroc", "au_pro", "best_epoch", "last_image_auroc", "last_pixel_auroc",
             "last_au_pro", "last_epoch"]
    shown = [c for c in shown if any(r.get(c) is not None and not (isinstance(r.get(c), float) and
                                                                  math.isnan(r[c])) for r in rows.values())]
    ran = {k: v for k, v in rows.items() if k in {f"{args.dataset}_{c}" for c in classes}}
    print()
    print(format_table(ran, shown))
    print(f"\nresults: {csv_path}")
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("default", category=UserWarning)
    sys.exit(main())
