"""What a run writes besides checkpoints: heat maps and ``--save_maps`` files per class, the run record, and the
results table printed at the end."""
from __future__ import annotations

import math
from pathlib import Path

from common.run_names import run_record_path
from runner.options import RunOptions
from runner.results import denormalize, format_table, heatmap_panel, save_heatmap, save_maps, write_run_record

SHOWN_COLUMNS = ("image_auroc", "pixel_auroc", "au_pro", "best_epoch", "last_image_auroc", "last_pixel_auroc",
                 "last_au_pro", "last_epoch")


def write_eval_outputs(options: RunOptions, preprocessing, name: str, cls_name: str, dataset, pred) -> Path:
    out_dir = Path(options.results_path) / "eval" / name
    if options.heatmaps:
        value_range = (float(pred.maps.min()), float(pred.maps.max()))
        for index in range(len(dataset)):
            item = dataset[index]
            rgb = denormalize(item["image"].numpy(), preprocessing.mean, preprocessing.std)
            panel = heatmap_panel(rgb, pred.masks[index], pred.maps[index], value_range)
            save_heatmap(out_dir / f"{index + 1:03d}.png", panel)
    if options.save_maps:
        save_maps(out_dir, cls_name, pred, preprocessing, [s.image_path for s in dataset.samples])
    if options.heatmaps or options.save_maps:
        print(f"{name}: {'heat maps' if options.heatmaps else 'maps'} in {out_dir}")
    return out_dir


def record_run(results_path: Path, method: str, argv: list[str], values: dict) -> Path:
    """``run_<method>_<time>_<pid>_<6 hex>.json``: the command line and every flag value (``--config`` replays it)."""
    path = run_record_path(results_path, method)
    write_run_record(path, argv, values)
    return path


def print_summary(rows: dict[str, dict], names: set[str], csv_path: Path) -> None:
    ran = {k: v for k, v in rows.items() if k in names}
    shown = [c for c in SHOWN_COLUMNS
             if any(r.get(c) is not None and not (isinstance(r.get(c), float) and math.isnan(r[c]))
                    for r in rows.values())]
    print()
    print(format_table(ran, shown))
    print(f"\nresults: {csv_path}")
