"""Dataset conversions from the command line.

    python -m datasets.prepare visa <VisA root> <out> [--split_file 1cls.csv]   VisA -> MVTec AD layout
    python -m datasets.prepare loco <LOCO root> [<out>]                         LOCO merged <stem>_mask.png masks
"""
from __future__ import annotations

import argparse
import sys

from common.errors import UserError
from datasets.loco import merge_loco_masks
from datasets.visa import DEFAULT_SPLIT_FILE, prepare_visa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets.prepare", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    visa = sub.add_parser("visa", help="convert raw VisA to the MVTec AD layout (as anomalib)")
    visa.add_argument("root", help="raw VisA folder (holds split_csv/)")
    visa.add_argument("out", help="output folder of the MVTec-layout copy")
    visa.add_argument("--split_file", default=DEFAULT_SPLIT_FILE, help="file in split_csv/ to follow")
    loco = sub.add_parser("loco", help="write LOCO merged masks (the layout the SLSG code reads)")
    loco.add_argument("root", help="MVTec LOCO AD root")
    loco.add_argument("out", nargs="?", default=None, help="output root (default: beside the channel folders)")
    args = parser.parse_args(argv)
    try:
        if args.what == "visa":
            print(f"converted {prepare_visa(args.root, args.out, args.split_file)} images to {args.out}")
        else:
            print(f"wrote {merge_loco_masks(args.root, args.out)} merged masks")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
