"""Dataset conversions and preparation from the command line.

    python -m datasets.prepare visa <VisA root> <out> [--split_file 1cls.csv]   VisA -> MVTec AD layout
    python -m datasets.prepare loco <LOCO root> [<out>]                         LOCO merged <stem>_mask.png masks
    python -m datasets.prepare fgmask --datapath D --dataset mvtec [--classes C ...] [--kind auto|object|texture]
                                                                                 GLASS foreground masks (--fg 1)
    python -m datasets.prepare textures --output T                              DTD-like folder for --augpath
"""
from __future__ import annotations

import argparse
import sys

from common.errors import UserError
from datasets.loco import merge_loco_masks
from datasets.visa import DEFAULT_SPLIT_FILE, prepare_visa

FGMASK_DATASETS = ("mvtec", "visa", "mpdd", "wfdd", "folder")


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
    fg = sub.add_parser("fgmask", help="write GLASS foreground masks <datapath>/fg_mask/<class>/<file> "
                                       "(binarisation of the training images; docs/own-data.md)")
    fg.add_argument("--datapath", required=True, help="dataset root (as main.py --datapath)")
    fg.add_argument("--dataset", default="mvtec", choices=FGMASK_DATASETS, help="layout (as main.py --dataset)")
    fg.add_argument("--classes", "-d", nargs="+", action="extend", default=None,
                    help="classes to process (default: every class)")
    fg.add_argument("--kind", default="auto", choices=("auto", "object", "texture"),
                    help="auto: decide per class; object: always binarise; texture: full-frame masks")
    tex = sub.add_parser("textures", help="build a DTD-like texture folder for --augpath from offline sources")
    tex.add_argument("--output", required=True, help="folder to write (<output>/<category>/*.jpg)")
    tex.add_argument("--per_category", type=int, default=10, help="images per category (8 categories)")
    tex.add_argument("--side", type=int, default=300, help="image side in px")
    tex.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.what == "visa":
            print(f"converted {prepare_visa(args.root, args.out, args.split_file)} images to {args.out}")
        elif args.what == "loco":
            print(f"wrote {merge_loco_masks(args.root, args.out)} merged masks")
        elif args.what == "fgmask":
            from datasets.fg import generate_fg_masks

            generate_fg_masks(args.dataset, args.datapath, args.classes, args.kind)
        else:
            from datasets.offline_textures import build_texture_folder

            count = build_texture_folder(args.output, args.per_category, args.side, args.seed)
            print(f"wrote {count} textures to {args.output} (use --augpath {args.output})")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
