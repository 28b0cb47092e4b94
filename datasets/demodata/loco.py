"""A tiny MVTec LOCO AD tree in the official layout: ``coin_grid``, a pushpins-like box of 2 x 4 compartments
holding exactly one coin each.

Logical anomalies: a missing coin (1-2, one GT channel each), an extra coin in a compartment, an oversized coin.
Structural anomalies: a scratched coin, contamination on the box, a broken coin. GT: one PNG per defect instance
(``ground_truth/<type>/<stem>/000.png`` ...) whose non-zero pixels equal the defect's ``pixel_value``.
"""
from __future__ import annotations

import json

import numpy as np

from datasets.demodata.defects import ALPHA_MIN, apply_defect, contamination, missing_piece, scratch
from datasets.demodata.sources import coins, place_coin, plate

LOCO_CLASS = "coin_grid"
ROWS, COLS = 2, 4
COUNTS = {"train": 10, "validation": 4, "good": 6, "logical_anomalies": 6, "structural_anomalies": 6}
DEFECTS = [  # defect_name, pixel_value, saturation_threshold, relative_saturation
    ("missing_coin", 255, 0.5, True),
    ("extra_coin", 254, 1.0, True),
    ("oversized_coin", 253, 1.0, True),
    ("scratch", 252, 1.0, True),
    ("contamination", 251, 1.0, True),
    ("broken_coin", 250, 1.0, True),
]
PIXEL_VALUE = {name: value for name, value, _, _ in DEFECTS}
LOGICAL = ("missing_coin", "extra_coin", "oversized_coin")
STRUCTURAL = ("scratch", "contamination", "broken_coin")


class _Scene:
    """Box plate with walls and a list of placed coins; renders to a float RGB image."""

    def __init__(self, h, w, rng):
        self.h, self.w, self.rng = h, w, rng
        self.box = plate(h, w, rng, level=70.0)
        ch, cw = h / ROWS, w / COLS
        for r in range(ROWS + 1):
            y = int(round(min(r * ch, h - 2)))
            self.box[max(y - 2, 0):y + 2] = 150.0
        for c in range(COLS + 1):
            x = int(round(min(c * cw, w - 2)))
            self.box[:, max(x - 2, 0):x + 2] = 150.0
        self.cell = (ch, cw)
        self.layers = []  # (rgb, alpha)

    def coin(self, coin, row, col, scale, offset=(0.0, 0.0)):
        ch, cw = self.cell
        centre = ((row + 0.5) * ch + self.rng.normal(0, 0.06 * ch) + offset[0],
                  (col + 0.5) * cw + self.rng.normal(0, 0.06 * cw) + offset[1])
        rgb, alpha = place_coin(coin, self.h, self.w, centre, scale, self.rng.uniform(0, 360))
        self.layers.append((rgb, alpha))
        return alpha

    def render(self, skip=()):
        img = self.box.copy()
        for k, (rgb, alpha) in enumerate(self.layers):
            if k not in skip:
                img = img * (1 - alpha[..., None]) + rgb * alpha[..., None]
        return img


def _scene(h, w, rng, pool, scale):
    scene = _Scene(h, w, rng)
    for r in range(ROWS):
        for c in range(COLS):
            scene.coin(pool[int(rng.integers(len(pool)))], r, c, scale)
    return scene


def _channel(mask: np.ndarray, name: str) -> np.ndarray:
    return (mask > 0).astype(np.uint8) * PIXEL_VALUE[name]


def _logical(kind, h, w, rng, pool, scale):
    """(image float, [(name, channel bool mask), ...])."""
    scene = _scene(h, w, rng, pool, scale)
    if kind == "missing_coin":
        gone = rng.choice(ROWS * COLS, int(rng.integers(1, 3)), replace=False)
        img = scene.render(skip=set(int(g) for g in gone))
        return img, [("missing_coin", scene.layers[int(g)][1] > ALPHA_MIN) for g in sorted(gone)]
    if kind == "extra_coin":
        r, c = int(rng.integers(ROWS)), int(rng.integers(COLS))
        dy, dx = scene.cell[0] * 0.2 * rng.choice([-1, 1]), scene.cell[1] * 0.2 * rng.choice([-1, 1])
        alpha = scene.coin(pool[int(rng.integers(len(pool)))], r, c, scale, offset=(dy, dx))
        return scene.render(), [("extra_coin", alpha > ALPHA_MIN)]
    k = int(rng.integers(ROWS * COLS))
    old_alpha = scene.layers[k][1]
    r, c = divmod(k, COLS)
    scene.layers[k] = (np.zeros_like(scene.box), np.zeros_like(old_alpha))
    big = scene.coin(pool[int(rng.integers(len(pool)))], r, c, scale * 1.45)
    scene.layers[k] = scene.layers.pop()
    return scene.render(), [("oversized_coin", (old_alpha > ALPHA_MIN) | (big > ALPHA_MIN))]


def _structural(kind, h, w, rng, pool, scale):
    scene = _scene(h, w, rng, pool, scale)
    clean = scene.render()
    clean_u8 = np.clip(np.rint(clean), 0, 255).astype(np.uint8)
    k = int(rng.integers(ROWS * COLS))
    coin_alpha = scene.layers[k][1]
    for _ in range(100):
        if kind == "scratch":
            out, support = scratch(clean, coin_alpha, 0.15 * (coin_alpha > 0.5).sum(), rng)
        elif kind == "contamination":
            free = 1.0 - np.clip(sum(a for _, a in scene.layers), 0, 1)
            out, support = contamination(clean, free.astype(np.float32), 0.01 * h * w, rng)
        else:
            bg = scene.render(skip={k})
            out, support = missing_piece(clean, coin_alpha, 0.2 * (coin_alpha > 0.5).sum(), rng, background=bg)
        image, mask = apply_defect(clean_u8, out, support)
        if 0.0005 <= (mask > 0).mean() <= 0.05:
            return image.astype(np.float32), [(kind, mask > 0)]
    raise RuntimeError(f"could not draw a {kind} defect")


def write_loco(tree, seed: int, size: int, rng: np.random.Generator, png, counts: dict[str, int] | None = None) -> None:
    """Write ``loco/coin_grid/...`` into ``tree`` (see ``datasets.demo._Tree``); ``size`` = image width; ``counts``
    overrides entries of ``COUNTS`` (images per split / anomaly type)."""
    counts = {**COUNTS, **(counts or {})}
    w = int(size)
    h = int(round(0.6 * w))
    all_coins = coins()
    scale = 0.6 * min(h / ROWS, w / COLS) / max(c.diameter for c in all_coins)
    train_pool = [c for k, c in enumerate(all_coins) if k % 3 != 0]
    base = f"loco/{LOCO_CLASS}"

    def save(rel, img):
        tree.write(f"{base}/{rel}", png(np.clip(np.rint(img), 0, 255).astype(np.uint8)))

    for split, folder in (("train", "train/good"), ("validation", "validation/good"), ("good", "test/good")):
        for i in range(counts[split]):
            save(f"{folder}/{i:03d}.png", _scene(h, w, rng, train_pool if split != "good" else all_coins,
                                                 scale).render())
    for kind_type, kinds, make in (("logical_anomalies", LOGICAL, _logical),
                                   ("structural_anomalies", STRUCTURAL, _structural)):
        for i in range(counts[kind_type]):
            img, channels = make(kinds[i % len(kinds)], h, w, rng, all_coins, scale)
            save(f"test/{kind_type}/{i:03d}.png", img)
            for j, (name, mask) in enumerate(channels):
                tree.write(f"{base}/ground_truth/{kind_type}/{i:03d}/{j:03d}.png", png(_channel(mask, name)))
    config = [{"defect_name": n, "pixel_value": v, "saturation_threshold": t, "relative_saturation": r}
              for n, v, t, r in DEFECTS]
    tree.write(f"{base}/defects_config.json", (json.dumps(config, indent=1) + "\n").encode())


__all__ = ["LOCO_CLASS", "DEFECTS", "write_loco"]
