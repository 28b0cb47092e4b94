"""Drop-in replacement of the official MVTec AD / MVTec LOCO AD evaluation scripts (exact curves, one sort).

    python -m metrics.evaluate --anomaly_maps_dir MAPS --dataset_base_dir DATA --output_dir OUT \
        [--evaluated_objects bottle cable ...] [--pro_integration_limit 0.3] [--layout mvtec|loco]

Maps: ``MAPS/<object>/test/<type>/<id>.tiff`` (2-D float TIFF at the original image resolution), one per test image
``DATA/<object>/test/<type>/<id>.png``. MVTec AD GT: ``DATA/<object>/ground_truth/<type>/<id>_mask.png``
(positive iff != 0). MVTec LOCO GT: ``DATA/<object>/ground_truth/<type>/<id>/NNN.png`` (one PNG per defect
channel) and ``DATA/<object>/defects_config.json``. Writes ``OUT/metrics.json`` with the official keys.
This is the only file-aware module of ``metrics``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_text, check_writable
from common.errors import UserError

from .loco import LOCO_LIMITS, image_scores_max, loco_classification, loco_localization
from .pro import au_pro
from .ranking import image_auroc
from .spro import saturation_area

MAP_SUFFIXES = (".tiff", ".tif", ".TIFF", ".TIF")


@dataclass
class TestImage:
    """One test image: its folder name, id, map path and ground truth (AD: one mask file; LOCO: channel files)."""

    anomaly_type: str
    image_id: str
    map_path: Path
    gt_paths: list[Path] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        evaluate(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def evaluate(args: argparse.Namespace) -> dict:
    """Evaluate every object, print the official figures, write ``metrics.json``; returns what it wrote."""
    maps_dir, data_dir = Path(args.anomaly_maps_dir), Path(args.dataset_base_dir)
    for flag, path in (("--anomaly_maps_dir", maps_dir), ("--dataset_base_dir", data_dir)):
        if not path.is_dir():
            raise UserError(f"{flag}: folder {path} does not exist")
    if args.output_dir:  # before the long computation, not after it
        check_writable(args.output_dir, "--output_dir")
    objects = _objects(args, maps_dir, data_dir)
    if args.layout == "mvtec":
        if not 0.0 < args.pro_integration_limit <= 1.0:
            raise UserError(f"--pro_integration_limit must be in (0, 1], got {args.pro_integration_limit}")
        result = _evaluate_mvtec(objects, maps_dir, data_dir, args.pro_integration_limit, args.device)
    else:
        for limit in args.max_fprs:
            if not 0.0 < limit <= 1.0:
                raise UserError(f"--max_fprs values must be in (0, 1], got {limit}")
        per_object = {obj: _evaluate_loco(obj, maps_dir, data_dir, args.max_fprs) for obj in objects}
        result = per_object[objects[0]] if args.object_name else per_object
    if args.output_dir:
        out = Path(args.output_dir) / "metrics.json"
        atomic_write_text(out, json.dumps(result, indent=4, sort_keys=args.layout == "loco"))
        print(f"Wrote metrics to {out}")
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metrics.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--anomaly_maps_dir", required=True, help="MAPS/<object>/test/<type>/<id>.tiff")
    p.add_argument("--dataset_base_dir", required=True, help="the MVTec AD or MVTec LOCO AD root")
    p.add_argument("--output_dir", default=None, help="where metrics.json is written (optional)")
    p.add_argument("--evaluated_objects", nargs="+", default=None,
                   help="objects to evaluate (default: every object folder of --anomaly_maps_dir)")
    p.add_argument("--object_name", default=None,
                   help="LOCO: one object, metrics.json without the object level (as the official LOCO script)")
    p.add_argument("--layout", choices=("mvtec", "loco"), default="mvtec")
    p.add_argument("--pro_integration_limit", type=float, default=0.3, help="MVTec AD: FPR limit of the AU-PRO")
    p.add_argument("--max_fprs", type=float, nargs="+", default=list(LOCO_LIMITS), help="LOCO: AU-sPRO FPR limits")
    p.add_argument("--curve_max_distance", type=float, default=None,
                   help="LOCO: accepted for compatibility; the exact curve (every distinct score) is used")
    p.add_argument("--device", default=None, help="torch device for the MVTec pixel sort, e.g. cuda (default numpy)")
    return p


def _objects(args: argparse.Namespace, maps_dir: Path, data_dir: Path) -> list[str]:
    if args.object_name:
        if args.layout != "loco":
            raise UserError("--object_name is the MVTec LOCO flag; use --evaluated_objects with --layout mvtec")
        objects = [args.object_name]
    elif args.evaluated_objects:
        objects = list(args.evaluated_objects)
    else:
        objects = sorted(p.name for p in maps_dir.iterdir() if p.is_dir() and (data_dir / p.name).is_dir())
        if not objects:
            raise UserError(f"--anomaly_maps_dir {maps_dir} holds no object folder that is also in "
                            f"--dataset_base_dir {data_dir}")
    for obj in objects:
        if not (data_dir / obj / "test").is_dir():
            raise UserError(f"object {obj!r}: {data_dir / obj / 'test'} does not exist (--dataset_base_dir)")
    return objects


def _test_images(obj: str, maps_dir: Path, data_dir: Path, loco: bool) -> list[TestImage]:
    """Every test image of ``obj`` with its map and GT paths (types and ids sorted); missing files are errors."""
    images = []
    for type_dir in sorted(p for p in (data_dir / obj / "test").iterdir() if p.is_dir()):
        if not type_dir.name.replace("_", "").isalpha():
            continue
        for image in sorted(type_dir.glob("*.png")):
            item = TestImage(type_dir.name, image.stem, _map_path(maps_dir / obj / "test" / type_dir.name, image.stem))
            if type_dir.name != "good":
                gt_root = data_dir / obj / "ground_truth" / type_dir.name
                if loco:
                    channel_dir = gt_root / image.stem
                    item.gt_paths = sorted(channel_dir.glob("*.png"))
                    if not item.gt_paths:
                        raise UserError(f"no ground-truth channel PNG in {channel_dir} (for test image {image})")
                else:
                    mask = gt_root / f"{image.stem}_mask.png"
                    if not mask.is_file():
                        raise UserError(f"ground-truth mask {mask} is missing (for test image {image})")
                    item.gt_paths = [mask]
            images.append(item)
    if not images:
        raise UserError(f"no test image (*.png) under {data_dir / obj / 'test'}")
    return images


def _map_path(folder: Path, stem: str) -> Path:
    for suffix in MAP_SUFFIXES:
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise UserError(f"anomaly map {folder / (stem + '.tiff')} is missing (--anomaly_maps_dir)")


def _read_map(path: Path) -> np.ndarray:
    import tifffile

    try:
        amap = np.squeeze(tifffile.imread(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file
        raise UserError(f"cannot read anomaly map {path}: {err}") from err
    if amap.ndim != 2 or not np.issubdtype(amap.dtype, np.number):
        raise UserError(f"anomaly map {path} must be a 2-D array of numbers, got shape {amap.shape}")
    if not np.isfinite(amap).all():
        raise UserError(f"anomaly map {path} contains NaN or inf")
    return amap if amap.dtype in (np.float32, np.float64) else amap.astype(np.float64)


def _read_gt(path: Path, shape: tuple[int, ...], map_path: Path) -> tuple[np.ndarray, int]:
    """(binary mask, the single positive value) of a GT PNG; not binary or another size than the map: error."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            gt = np.asarray(img)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"cannot read ground-truth mask {path}: {err}") from err
    if gt.ndim != 2:
        raise UserError(f"ground-truth mask {path} must be single-channel, got shape {gt.shape}")
    if gt.shape != shape:
        raise UserError(f"anomaly map {map_path} has shape {shape} but its ground truth {path} has {gt.shape} "
                        "(maps must be at the original image resolution)")
    values = np.unique(gt)
    positive = values[values != 0]
    if positive.size > 1:
        raise UserError(f"ground-truth mask {path} is not binary: values {values[:8].tolist()}")
    return gt != 0, int(positive[0]) if positive.size else 0


def _evaluate_mvtec(objects: list[str], maps_dir: Path, data_dir: Path, limit: float, device) -> dict:
    result, pros, rocs = {}, [], []
    for obj in objects:
        print(f"=== Evaluate {obj} ===")
        images = _test_images(obj, maps_dir, data_dir, loco=False)
        maps = [_read_map(item.map_path) for item in images]
        shapes = {m.shape for m in maps}
        if len(shapes) > 1:
            raise UserError(f"anomaly maps of {obj} differ in size ({sorted(shapes)}); one size per object expected")
        masks = [_read_gt(item.gt_paths[0], m.shape, item.map_path)[0] if item.gt_paths else np.zeros(m.shape, bool)
                 for item, m in zip(images, maps)]
        stack = np.stack(maps).astype(np.result_type(*maps), copy=False)
        masks = np.stack(masks)
        value = au_pro(masks, stack, limit, device=device)
        scores = image_scores_max(maps)
        labels = masks.reshape(len(masks), -1).any(axis=1).astype(np.uint8)
        roc = image_auroc(labels, scores)
        fpr, tpr = _roc_points(labels, scores)
        print(f"AU-PRO (FPR limit: {limit}): {value}")
        print(f"Image-level classification AU-ROC: {roc}\n")
        result[obj] = {"au_pro": value, "classification_au_roc": roc,
                       "classification_roc_curve_fpr": fpr, "classification_roc_curve_tpr": tpr}
        pros.append(value)
        rocs.append(roc)
    result["mean_au_pro"] = float(np.mean(pros))
    result["mean_classification_au_roc"] = float(np.mean(rocs))
    print(f"Mean AU-PRO: {result['mean_au_pro']}  mean classification AU-ROC: {result['mean_classification_au_roc']}")
    return result


def _roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[float]]:
    """Image-level ROC as the official lists: (0, 0), then one point per distinct score, descending, to (1, 1)."""
    order = np.argsort(scores)[::-1]
    s, y = scores[order], labels[order]
    last = np.r_[s[1:] != s[:-1], True]
    n_pos, n_neg = int(labels.sum()), int(labels.size - labels.sum())
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    fpr = [0.0] + [int(v) / n_neg if n_neg else float("nan") for v in fp]
    tpr = [0.0] + [int(v) / n_pos if n_pos else float("nan") for v in tp]
    return fpr, tpr


def _load_defects_config(obj_dir: Path) -> dict[int, dict]:
    path = obj_dir / "defects_config.json"
    if not path.is_file():
        raise UserError(f"{path} is missing (MVTec LOCO layout)")
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot parse {path}: {err}") from err
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path} must be a non-empty JSON list of defect entries")
    by_value = {}
    for entry in entries:
        try:
            value, threshold = int(entry["pixel_value"]), entry["saturation_threshold"]
            relative, name = bool(entry["relative_saturation"]), str(entry["defect_name"])
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: bad entry {entry!r} (needs defect_name, pixel_value, saturation_threshold, "
                            "relative_saturation)") from err
        if relative and not 0.0 < float(threshold) <= 1.0:
            raise UserError(f"{path}: relative saturation_threshold of {name!r} must be in (0, 1], got {threshold}")
        if not relative and (int(threshold) != threshold or threshold < 1):
            raise UserError(f"{path}: absolute saturation_threshold of {name!r} must be a positive integer")
        if value in by_value:
            raise UserError(f"{path}: pixel_value {value} appears twice")
        by_value[value] = {"name": name, "threshold": threshold, "relative": relative}
    return by_value


def _evaluate_loco(obj: str, maps_dir: Path, data_dir: Path, limits: list[float]) -> dict:
    print(f"=== Evaluate {obj} ===")
    config = _load_defects_config(data_dir / obj)
    images = _test_images(obj, maps_dir, data_dir, loco=True)
    maps, channels, types = [], [], []
    for item in images:
        amap = _read_map(item.map_path)
        chans = []
        for path in item.gt_paths:
            mask, value = _read_gt(path, amap.shape, item.map_path)
            if value not in config:
                raise UserError(f"ground-truth channel {path} has pixel value {value}, which is in no entry of "
                                f"{data_dir / obj / 'defects_config.json'}")
            entry = config[value]
            sat = saturation_area(int(mask.sum()), entry["threshold"], entry["relative"])
            chans.append((mask, sat))
        maps.append(amap)
        channels.append(chans)
        types.append(item.anomaly_type)
    classification = loco_classification(types, image_scores_max(maps))
    localization = loco_localization(maps, types, channels, limits)
    for subset, values in localization.items():
        print(f"AU-sPRO {subset}: " + ", ".join(f"{k}: {v:.6f}" for k, v in values.items()))
    print("Image-level AU-ROC: " + ", ".join(f"{k}: {v:.6f}" for k, v in classification.items()) + "\n")
    return {"classification": {"auc_roc": classification}, "localization": {"auc_spro": localization}}


if __name__ == "__main__":
    raise SystemExit(main())
