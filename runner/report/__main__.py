"""``python -m report RESULTS_PATH``: (re)write ``RESULTS_PATH/report.html`` from what a run left there."""
from __future__ import annotations

import sys
from pathlib import Path

from runner.report.page import write_report


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("error: usage: python -m report RESULTS_PATH (a folder holding results.csv)", file=sys.stderr)
        return 2
    print(write_report(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
