"""Embedded demo data: a small MVTec-format benchmark built from real images shipped with scikit-image.

``generate_demo(root)`` writes ``root/mvtec/<class>/...`` for the "line" variant (one product per class as on an
inspection line: coin, tile, flange, label) or the "hard" variant (textures brick, gravel, grass and the object
class coins with unseen coin designs at test time), ``root/mvtec/fg_mask/<class>/<train file>``, a DTD-like ``root/dtd/images/<category>/*.jpg`` and
``root/manifest.json``. ``generate_loco_demo(root)`` writes an MVTec LOCO AD tree (``root/loco/coin_grid``).
Both are deterministic in ``seed``, built in a temporary sibling folder and renamed into place, and re-used when
``manifest.json`` matches and every listed file exists. ``python -m datasets.demo --out DIR [--variant line|hard] [--loco]``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from common.errors import UserError

GENERATOR = "toolkit-demo"
VERSION = 2
MIN_AREA, MAX_AREA = 0.001, 0.05
LINE_CLASSES = ("coin", "tile", "flange", "label")
HARD_CLASSES = ("brick", "gravel", "grass", "coins")
VARIANTS = {"line": LINE_CLASSES, "hard": HARD_CLASSES}
CLASSES = LINE_CLASSES + HARD_CLASSES  # every class generate_demo knows


@dataclass(frozen=True)
class DemoData:
    datapath: Path          # the dataset root to pass as --datapath
    augpath: Path | None    # DTD-like texture folder for --augpath
    classes: list[str]


# --- writing ---------------------------------------------------------------------------------------------------

def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


class _Tree:
    """Collects files under a build folder and remembers their relative paths."""

    def __init__(self, base: Path):
        self.base, self.files = base, []

    def write(self, rel: str, data: bytes) -> None:
        path = self.base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files.append(rel)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _manifest_ok(root: Path, wanted: dict) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if any(manifest.get(k) != v for k, v in wanted.items()):
        return False
    return all((root / rel).is_file() for rel in manifest.get("files", []))


def _build(root: Path, wanted: dict, fill: Callable[[_Tree], None]) -> None:
    """Re-use a complete tree, else build one in a temporary sibling folder and rename it to ``root``."""
    root = Path(root)
    if _manifest_ok(root, wanted):
        return
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not (root / "manifest.json").exists())):
        raise UserError(f"{root} exists and is not a demo-data folder (no manifest.json); choose another --out")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-", dir=root.parent))
    try:
        tree = _Tree(tmp)
        fill(tree)
        manifest = dict(wanted, files=sorted(tree.files))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "tree")
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- content ---------------------------------------------------------------------------------------------------

def _make_defect(fn, clean: np.ndarray, region: np.ndarray, rng: np.random.Generator, **extra):
    """Draw a defect until its mask area is within [MIN_AREA, MAX_AREA] of the image (inside ``region``)."""
    from datasets.demodata.defects import apply_defect

    h, w = region.shape
    clean_u8 = _u8(clean)
    for _ in range(100):
        area = float(np.exp(rng.uniform(np.log(0.003), np.log(0.03)))) * h * w
        out, support = fn(clean, region, area, rng, **extra)
        image, mask = apply_defect(clean_u8, out, support)
        frac = (mask > 0).mean()
        changed = (image != clean_u8).any(axis=-1)
        if MIN_AREA <= frac <= MAX_AREA and changed.sum() >= 0.5 * (mask > 0).sum():
            return image, mask
    raise RuntimeError(f"could not draw a {fn.__name__} defect within the area bounds")


def _write_class(tree: _Tree, cls: str, train, test_good, defects: dict, prefix: str = "mvtec") -> None:
    """train: list of (image, fg); test_good: list of images; defects: {type: [(image, mask), ...]}."""
    for i, (image, fg) in enumerate(train):
        tree.write(f"{prefix}/{cls}/train/good/{i:03d}.png", _png(image))
        tree.write(f"{prefix}/fg_mask/{cls}/{i:03d}.png", _png(fg))
    for i, image in enumerate(test_good):
        tree.write(f"{prefix}/{cls}/test/good/{i:03d}.png", _png(image))
    for kind, items in defects.items():
        for i, (image, mask) in enumerate(items):
            tree.write(f"{prefix}/{cls}/test/{kind}/{i:03d}.png", _png(image))
            tree.write(f"{prefix}/{cls}/ground_truth/{kind}/{i:03d}_mask.png", _png(mask))


def _texture_class(tree, cls, seed, size, n_train, n_test_good, n_per_defect):
    from datasets.demodata.defects import TEXTURE_DEFECTS
    from datasets.demodata.sources import crop_texture, texture_source

    rng = _rng(seed, cls)
    source = texture_source(cls)
    ones = np.full((size, size), 255, np.uint8)
    train = [(_u8(crop_texture(source, "top", size, rng)), ones) for _ in range(n_train)]
    good = [_u8(crop_texture(source, "bottom", size, rng)) for _ in range(n_test_good)]
    region = np.ones((size, size), np.float32)
    defects = {kind: [_make_defect(fn, crop_texture(source, "bottom", size, rng), region, rng)
                      for _ in range(n_per_defect)] for kind, fn in TEXTURE_DEFECTS.items()}
    _write_class(tree, cls, train, good, defects)


def _coin_scene(coin, size, scale, rng):
    """(clean float image, background, coin alpha) of one coin on the plate."""
    from datasets.demodata.sources import place_coin, plate

    bg = plate(size, size, rng)
    centre = (size / 2 + rng.normal(0, 0.03 * size), size / 2 + rng.normal(0, 0.03 * size))
    rgb, alpha = place_coin(coin, size, size, centre, scale, rng.uniform(0, 360))
    return bg * (1 - alpha[..., None]) + rgb * alpha[..., None], bg, alpha


def _coin_class(tree, cls, seed, size, n_train, n_test_good, n_per_defect):
    from datasets.demodata.defects import OBJECT_DEFECTS, missing_piece
    from datasets.demodata.sources import coins

    rng = _rng(seed, cls)
    all_coins = coins()
    scale = 0.5 * size / max(c.diameter for c in all_coins)
    train_coins = [c for k, c in enumerate(all_coins) if k % 3 != 0]  # split by coin identity
    test_coins = [c for k, c in enumerate(all_coins) if k % 3 == 0]
    train = []
    for i in range(n_train):
        clean, _, alpha = _coin_scene(train_coins[i % len(train_coins)], size, scale, rng)
        train.append((_u8(clean), ((alpha > 0.5) * 255).astype(np.uint8)))
    good = [_u8(_coin_scene(test_coins[i % len(test_coins)], size, scale, rng)[0]) for i in range(n_test_good)]
    defects, k = {}, 0
    for kind, fn in OBJECT_DEFECTS.items():
        defects[kind] = []
        for _ in range(n_per_defect):
            clean, bg, alpha = _coin_scene(test_coins[k % len(test_coins)], size, scale, rng)
            k += 1
            extra = {"background": bg} if fn is missing_piece else {}
            defects[kind].append(_make_defect(fn, clean, alpha, rng, **extra))
    _write_class(tree, cls, train, good, defects)


def _product_defects(cls: str) -> dict:
    from datasets.demodata.defects import OBJECT_DEFECTS, TEXTURE_DEFECTS, crack, missing_piece

    if cls == "tile":
        return dict(TEXTURE_DEFECTS)
    if cls == "flange":  # machined metal: cracks and chipped edges rather than stains
        return {k: f for k, f in {**OBJECT_DEFECTS, "crack": crack}.items() if k != "stain"}
    return dict(OBJECT_DEFECTS)  # coin, label (missing_piece = a torn-off corner or edge)


def _product_class(tree, cls, seed, size, n_train, n_test_good, n_per_defect):
    """One product (datasets/demodata/products.py); train and test images come from the same line."""
    from datasets.demodata.defects import missing_piece
    from datasets.demodata.products import render

    rng = _rng(seed, cls)
    train = []
    for _ in range(n_train):
        scene = render(cls, size, rng)
        train.append((_u8(scene.image), scene.fg))
    good = [_u8(render(cls, size, rng).image) for _ in range(n_test_good)]
    defects = {}
    for kind, fn in _product_defects(cls).items():
        defects[kind] = []
        for _ in range(n_per_defect):
            scene = render(cls, size, rng)
            extra = {"background": scene.background} if fn is missing_piece else {}
            defects[kind].append(_make_defect(fn, scene.image, scene.region, rng, **extra))
    _write_class(tree, cls, train, good, defects)


def _dtd(tree, seed, per_category=3, side=300, prefix="dtd/images"):
    from datasets.demodata.sources import dtd_images

    for cat, images in dtd_images(per_category, side, _rng(seed, "dtd")).items():
        for i, image in enumerate(images):
            tree.write(f"{prefix}/{cat}/{cat}_{i:04d}.jpg", _jpg(_u8(image)))


def generate_demo(root: str | os.PathLike, seed: int = 0, size: int = 256, n_train: int = 30,
                  n_test_good: int = 10, n_per_defect: int = 5, classes: Sequence[str] | None = None,
                  variant: str = "line") -> DemoData:
    """Write (or re-use) the demo MVTec-format dataset under ``root``; see the module docstring. ``classes``
    defaults to the classes of ``variant``; any class of either variant may be named."""
    root = Path(root)
    if variant not in VARIANTS:
        raise UserError(f"unknown demo variant {variant!r}; available: {', '.join(VARIANTS)}")
    classes = list(VARIANTS[variant] if classes is None else classes)
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise UserError(f"unknown demo classes {unknown}; available: {', '.join(CLASSES)}")
    if size < 64 or min(n_train, n_test_good, n_per_defect) < 1:
        raise UserError(f"demo size must be >= 64 and every count >= 1 (got size {size})")
    wanted = {"generator": GENERATOR, "kind": "mvtec", "version": VERSION, "seed": int(seed), "size": int(size),
              "n_train": n_train, "n_test_good": n_test_good, "n_per_defect": n_per_defect, "classes": classes}

    def fill(tree: _Tree) -> None:
        for cls in classes:
            make = (_product_class if cls in LINE_CLASSES else _coin_class if cls == "coins"
                    else _texture_class)
            make(tree, cls, seed, size, n_train, n_test_good, n_per_defect)
        _dtd(tree, seed)

    _build(root, wanted, fill)
    return DemoData(root / "mvtec", root / "dtd" / "images", classes)


def generate_loco_demo(root: str | os.PathLike, seed: int = 0, size: int = 320, n_train: int | None = None,
                       n_validation: int | None = None, n_test_good: int | None = None,
                       n_per_type: int | None = None) -> DemoData:
    """Write (or re-use) a tiny MVTec LOCO AD tree (official layout) under ``root/loco`` plus ``root/dtd``. The
    counts default to ``datasets.demodata.loco.COUNTS`` (10 train, 4 validation, 6 good test, 6 per anomaly type)."""
    from datasets.demodata.loco import COUNTS, LOCO_CLASS, write_loco

    root = Path(root)
    if size < 160:
        raise UserError(f"LOCO demo size must be >= 160 (got {size})")
    given = {"train": n_train, "validation": n_validation, "good": n_test_good, "logical_anomalies": n_per_type,
             "structural_anomalies": n_per_type}
    counts = {key: COUNTS[key] if value is None else int(value) for key, value in given.items()}
    if min(counts.values()) < 1:
        raise UserError(f"every LOCO demo count must be >= 1 (got {counts})")
    wanted = {"generator": GENERATOR, "kind": "loco", "version": VERSION, "seed": int(seed), "size": int(size)}
    if counts != COUNTS:  # the default tree keeps its manifest (and caches) as before
        wanted["counts"] = counts

    def fill(tree: _Tree) -> None:
        write_loco(tree, seed, size, _rng(seed, LOCO_CLASS), _png, counts)
        _dtd(tree, seed)

    _build(root, wanted, fill)
    return DemoData(root / "loco", root / "dtd" / "images", [LOCO_CLASS])


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (created; re-used when complete)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=None, help="image side (default 256; LOCO width 320)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="line",
                        help="line: one product per class with line variation (default); hard: the natural "
                             "textures and unseen coin designs")
    parser.add_argument("--classes", nargs="+", default=None, help="a subset of the variant's classes")
    parser.add_argument("--n_train", type=int, default=None, help="training images per class (default 30; LOCO 10)")
    parser.add_argument("--n_test_good", type=int, default=None, help="good test images (default 10; LOCO 6)")
    parser.add_argument("--n_per_defect", type=int, default=None,
                        help="test images per defect kind (default 5); LOCO: per anomaly type (default 6)")
    parser.add_argument("--n_validation", type=int, default=None, help="LOCO only: validation/good images (default 4)")
    parser.add_argument("--loco", action="store_true", help="write the MVTec LOCO AD demo instead")
    args = parser.parse_args(argv)
    try:
        if args.loco:
            data = generate_loco_demo(args.out, seed=args.seed, size=args.size or 320, n_train=args.n_train,
                                      n_validation=args.n_validation, n_test_good=args.n_test_good,
                                      n_per_type=args.n_per_defect)
        else:
            if args.n_validation is not None:
                raise UserError("--n_validation is for --loco (the MVTec layout has no validation split)")
            data = generate_demo(args.out, seed=args.seed, size=args.size or 256, n_train=_or(args.n_train, 30),
                                 n_test_good=_or(args.n_test_good, 10), n_per_defect=_or(args.n_per_defect, 5),
                                 classes=args.classes, variant=args.variant)
    except UserError as err:
        print(f"error: {err}")
        return 2
    manifest = json.loads((Path(args.out) / "manifest.json").read_text())
    total = sum((Path(args.out) / rel).stat().st_size for rel in manifest["files"])
    print(f"demo data in {Path(args.out).resolve()}: {len(manifest['files'])} files, {total / 1e6:.1f} MB")
    print(f"  --datapath {data.datapath}")
    print(f"  --augpath  {data.augpath}")
    print(f"  classes    {' '.join(data.classes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
