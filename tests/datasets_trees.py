"""Tiny generated dataset trees for the datasets tests (a few 32-48 px images each)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Path:
    """A random image of ``size`` (W, H) in ``mode``; the format follows the suffix."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def write_mask(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (40, 32),
               value: int = 255) -> Path:
    """A 0/``value`` "L" mask with the rectangle ``box`` = (x0, y0, x1, y1) set."""
    array = np.zeros((size[1], size[0]), np.uint8)
    x0, y0, x1, y1 = box
    array[y0:y1, x0:x1] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L").save(path)
    return path


def mvtec_tree(root: Path, cls: str = "widget", train: int = 3, types: dict[str, int] | None = None,
               mask_suffix: str = "_mask", with_train: bool = True, ext: str = ".png") -> Path:
    """<root>/<cls>/{train/good, test/<type>, ground_truth/<type>} with 3-digit file names."""
    types = types if types is not None else {"good": 2, "scratch": 2, "crack": 1}
    seed = 0
    if with_train:
        for i in range(train):
            write_image(root / cls / "train" / "good" / f"{i:03d}{ext}", seed := seed + 1)
    for kind, count in types.items():
        for i in range(count):
            write_image(root / cls / "test" / kind / f"{i:03d}{ext}", seed := seed + 1)
            if kind != "good":
                write_mask(root / cls / "ground_truth" / kind / f"{i:03d}{mask_suffix}.png", (2 + i, 3, 20, 25))
    return root


def loco_tree(root: Path, cls: str = "box", merged: bool = False) -> Path:
    """A LOCO object: 2 train, 1 validation, test good 1 / logical 2 / structural 1, official GT folders (or the
    merged ``<stem>_mask.png`` layout) and a ``defects_config.json``."""
    size = (48, 32)
    seed = 100
    for i in range(2):
        write_image(root / cls / "train" / "good" / f"{i:03d}.png", seed := seed + 1, size)
    write_image(root / cls / "validation" / "good" / "000.png", seed := seed + 1, size)
    write_image(root / cls / "test" / "good" / "000.png", seed := seed + 1, size)
    channels = {
        ("logical_anomalies", "000"): [((0, 0, 10, 10), 255), ((5, 5, 20, 12), 254)],
        ("logical_anomalies", "001"): [((30, 20, 40, 30), 255)],
        ("structural_anomalies", "000"): [((10, 10, 14, 14), 100)],
    }
    for (kind, stem), defects in channels.items():
        write_image(root / cls / "test" / kind / f"{stem}.png", seed := seed + 1, size)
        gt = root / cls / "ground_truth" / kind
        if merged:
            union = np.zeros((size[1], size[0]), bool)
            for (x0, y0, x1, y1), _ in defects:
                union[y0:y1, x0:x1] = True
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray(union.astype(np.uint8) * 255).save(gt / f"{stem}_mask.png")
        else:
            for j, (box, value) in enumerate(defects):
                write_mask(gt / stem / f"{j:03d}.png", box, size, value)
    config = [
        {"defect_name": "missing_part", "pixel_value": 255, "saturation_threshold": 0.5, "relative_saturation": True},
        {"defect_name": "extra_part", "pixel_value": 254, "saturation_threshold": 30, "relative_saturation": False},
        {"defect_name": "scratch", "pixel_value": 100, "saturation_threshold": 1.0, "relative_saturation": True},
    ]
    (root / cls / "defects_config.json").write_text(json.dumps(config))
    return root


def visa_tree(root: Path) -> Path:
    """Raw VisA with two objects; masks use small label values (not 255), rows deliberately unsorted."""
    rows = ["object,split,label,image,mask"]
    seed = 200
    for obj in ("pcb1", "candle"):
        base = root / obj / "Data"
        for name in ("0003.JPG", "0001.JPG", "0002.JPG"):
            write_image(base / "Images" / "Normal" / name, seed := seed + 1, (48, 32))
        for name in ("0003.JPG", "0001.JPG"):
            rows.append(f"{obj},train,normal,{obj}/Data/Images/Normal/{name},")
        for i, name in enumerate(("001.JPG", "000.JPG")):
            write_image(base / "Images" / "Anomaly" / name, seed := seed + 1, (48, 32))
            write_mask(base / "Masks" / "Anomaly" / name.replace(".JPG", ".png"), (4 + 10 * i, 4, 16 + 10 * i, 20),
                       (48, 32), value=1 + i)
            rows.append(f"{obj},test,anomaly,{obj}/Data/Images/Anomaly/{name},"
                        f"{obj}/Data/Masks/Anomaly/{name.replace('.JPG', '.png')}")
        rows.insert(len(rows) - 1, f"{obj},test,normal,{obj}/Data/Images/Normal/0002.JPG,")
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root
