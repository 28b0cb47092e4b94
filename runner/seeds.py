"""Mean and standard deviation over seeds: ``python -m runner.seeds RUN_DIR [RUN_DIR ...] --out FILE``.

Each RUN_DIR is the ``--results_path`` of one seed's run (holding its ``results.csv``). The summary has one row per
class and, per metric, ``<metric>_mean`` and ``<metric>_std`` (sample standard deviation, ddof=1), plus the number
of seeds; it is how ``shell/run-seeds.sh`` reports the spread that a single best-on-test number hides.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes
from common.errors import UserError
from runner.results import read_results_csv

METRICS = ("image_auroc", "pixel_auroc", "au_pro", "pixel_pro", "image_ap", "pixel_ap",
           "last_image_auroc", "last_pixel_auroc", "last_au_pro")


def summarize(run_dirs: list[Path]) -> dict[str, dict[str, float]]:
    per_class: dict[str, dict[str, list[float]]] = {}
    for run in run_dirs:
        path = Path(run) / "results.csv"
        if not path.is_file():
            raise UserError(f"no results.csv in {run}")
        for name, row in read_results_csv(path).items():
            for metric in METRICS:
                value = row.get(metric)
                if value is not None and not np.isnan(value):
                    per_class.setdefault(name, {}).setdefault(metric, []).append(float(value))
    summary = {}
    for name, values in per_class.items():
        out: dict[str, float] = {}
        for metric, xs in values.items():
            out[f"{metric}_mean"] = float(np.mean(xs))
            out[f"{metric}_std"] = float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan")
            out["seeds"] = len(xs)
        summary[name] = out
    return summary


def write_summary(summary: dict[str, dict[str, float]], out: Path) -> Path:
    columns = sorted({k for row in summary.values() for k in row}, key=lambda c: (c == "seeds", c))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", *columns])
    for name, row in summary.items():
        writer.writerow([name, *(repr(row[c]) if c in row else "" for c in columns)])
    return atomic_write_bytes(out, buffer.getvalue().encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="results folders of the single-seed runs")
    parser.add_argument("--out", type=Path, required=True, help="summary CSV to write")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.runs)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_summary(summary, args.out)
    for name, row in summary.items():
        cells = [f"{m} {100 * row[m + '_mean']:.2f}±{100 * row[m + '_std']:.2f}" for m in
                 ("image_auroc", "pixel_auroc", "au_pro") if m + "_mean" in row]
        print(f"{name}: " + ", ".join(cells) + f" ({int(row['seeds'])} seeds)")
    print(f"summary: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
