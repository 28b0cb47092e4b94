"""Large images as overlapping tiles (``--tile SIZE --tile_overlap PX``): train on tiles, score tiles, stitch maps.

Training: every training image is cut into ``SIZE`` x ``SIZE`` tiles (stride ``SIZE - PX``, the last row/column
aligned to the image edge so nothing is lost) written once as PNG files under a cache folder; their foreground masks
are cut the same way. The method then trains on the tiles as on any image set (its preprocessing should leave a tile
whole: GLASS ``--resize`` = ``--imagesize``).

Scoring: the whole image is scaled by ``s = side / SIZE`` (``side`` = the method's input side), so that a tile is
exactly one network input, cut into the same tiles, each tile scored, and the tile maps stitched back on the scaled
image grid, overlapping pixels averaged; the image score is the maximum over its tiles. Ground truth goes through
the same scaling, so the metrics compare maps and masks on one grid. All test images of a class must share a size.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from common.errors import UserError
from datasets.preprocess import Preprocessing
from datasets.samples import Sample


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles along one axis: stride ``tile - overlap``, the last tile flush with the end."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def check_tiling(tile: int, overlap: int) -> None:
    """The flags' rule: ``--tile 0`` (off, ``--tile_overlap`` then 0 too) or ``--tile >= 1`` with
    ``0 <= --tile_overlap < --tile``."""
    if tile < 0 or (tile == 0 and overlap != 0) or (tile > 0 and not 0 <= overlap < tile):
        raise UserError(f"--tile must be >= 1 (0: off) and 0 <= --tile_overlap < --tile (got {tile}, {overlap})")


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of every tile of a ``height`` x ``width`` image, row by row."""
    if tile < 1:
        raise UserError(f"--tile must be >= 1, got {tile}")
    check_tiling(tile, overlap)
    return [(y, x, min(y + tile, height), min(x + tile, width))
            for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_train_tiles(samples: Sequence[Sample], tile: int, overlap: int, folder: str | os.PathLike) -> list[Sample]:
    """Cut every training image (and its foreground mask, if any) into tiles under ``folder``; the tile samples."""
    from common.atomic import atomic_write_bytes
    from datasets.image_io import read_mask, read_rgb

    folder = Path(folder)
    out = []
    for index, sample in enumerate(samples):
        image = read_rgb(sample.image_path)
        fg = read_mask(sample.fg_mask_path, channel=0) if sample.fg_mask_path else None
        stem = f"{index:05d}_{Path(sample.image_path).stem}"
        for k, (top, left, bottom, right) in enumerate(tile_boxes(image.height, image.width, tile, overlap)):
            path = folder / "images" / f"{stem}_t{k:04d}.png"
            if not path.is_file():
                atomic_write_bytes(path, _png(image.crop((left, top, right, bottom))))
            fg_path = None
            if fg is not None:
                fg_path = folder / "fg_mask" / path.name
                if not fg_path.is_file():
                    atomic_write_bytes(fg_path, _png(fg.crop((left, top, right, bottom))))
            out.append(Sample(str(path), sample.label, sample.anomaly_type, None, None,
                              str(fg_path) if fg_path else None))
    return out


def common_size(samples: Sequence[Sample]) -> tuple[int, int]:
    """(W, H) shared by all images (header reads only); ``UserError`` when they differ."""
    sizes = set()
    for sample in samples:
        with Image.open(sample.image_path) as image:
            sizes.add(image.size)
    if len(sizes) != 1:
        raise UserError(f"--tile: the images of a class must share one size; found {sorted(sizes)[:4]}")
    return sizes.pop()


def scaled_preprocessing(tile_pre: Preprocessing, width: int, height: int, tile: int) -> Preprocessing:
    """The whole-image preprocessing of tiled scoring: scale by ``side / tile``, no crop."""
    side = tile_pre.output_shape[0]
    scale = side / tile
    shape = (max(side, round(height * scale)), max(side, round(width * scale)))
    return Preprocessing(shape, shape, tile_pre.mean, tile_pre.std, tile_pre.interpolation)


@torch.no_grad()
def predict_tiled(predict, images: torch.Tensor, side: int, overlap: int, batch: int = 8
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Score (B, 3, H, W) whole images with ``predict`` (tiles (n, 3, side, side) -> scores (n,), maps (n, side,
    side)): image score = max over tiles, map = tile maps stitched with overlaps averaged."""
    b, _, h, w = images.shape
    boxes = tile_boxes(h, w, side, overlap)
    scores = np.full(b, -np.inf, np.float64)
    sums = np.zeros((b, h, w), np.float64)
    counts = np.zeros((h, w), np.float64)
    for top, left, bottom, right in boxes:
        counts[top:bottom, left:right] += 1
    jobs = [(i, box) for i in range(b) for box in boxes]
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        tiles = torch.stack([images[i, :, t:bo, le:r] for i, (t, le, bo, r) in chunk])
        tile_scores, tile_maps = predict(tiles)
        for (i, (t, le, bo, r)), score, tile_map in zip(chunk, tile_scores, tile_maps):
            scores[i] = max(scores[i], float(score))
            sums[i, t:bo, le:r] += tile_map[:bo - t, :r - le]
    return scores.astype(np.float32), (sums / counts).astype(np.float32)


class TiledModel:
    """A method seen through tiles: ``fit`` trains on training-image tiles, ``predict`` scores whole (scaled) images
    tile by tile, ``preprocessing(train=False)`` is the whole-image scaling. Everything else goes to the method."""

    def __init__(self, model, tile: int, overlap: int, cache: str | os.PathLike | None, reference: Sequence[Sample]):
        pre = model.preprocessing(train=False)
        side_h, side_w = pre.output_shape
        resized = pre.resized_size(tile, tile)
        if side_h != side_w or resized != (side_w, side_h):
            raise UserError(f"--tile: the method must take a tile whole (a square input, no crop): it resizes a "
                            f"{tile}px tile to {resized} and crops {side_w}x{side_h} (GLASS: --resize = --imagesize)")
        self.model, self.tile, self.side = model, int(tile), side_h
        self.cache = Path(cache) if cache is not None else None
        self.tile_overlap = int(overlap)
        self.overlap = int(round(overlap * self.side / self.tile))  # on the scaled grid
        tile_boxes(1, 1, tile, overlap)  # validates the flags
        self._whole = scaled_preprocessing(pre, *common_size(reference), tile) if reference else pre

    def __getattr__(self, name):
        return getattr(self.model, name)

    def preprocessing(self, train: bool) -> Preprocessing:
        return self.model.preprocessing(train) if train else self._whole

    def fit(self, train: Sequence[Sample], ckpt_dir, evaluate=None, **options) -> dict:
        if self.cache is None:
            raise UserError("--tile: no folder for the training tiles")
        tiles = write_train_tiles(train, self.tile, self.tile_overlap, self.cache)
        print(f"--tile {self.tile}: {len(train)} training image(s) -> {len(tiles)} tiles in {self.cache}")
        return self.model.fit(tiles, ckpt_dir, (lambda _inner: evaluate(self)) if evaluate else None, **options)

    def validation_tiles(self, held: Sequence[Sample]) -> list[Sample]:
        """The tiles of held-out whole images (``--select val``), written under ``<cache>/validation``: validation
        anomalies are made on tiles, as training anomalies are, and a tile is scored whole by ``predict``."""
        if self.cache is None:
            raise UserError("--tile: no folder for the validation tiles")
        return write_train_tiles(held, self.tile, self.tile_overlap, self.cache / "validation")

    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        return predict_tiled(self.model.predict, images, self.side, self.overlap)


def maybe_tiled(model, tile: int, overlap: int, reference: Sequence[Sample] = (),
                cache: str | os.PathLike | None = None):
    """The wiring entry: ``model`` unchanged without ``--tile`` (0); a ``TiledModel`` otherwise. ``reference``: the
    images whose (shared) size sets the whole-image scaling (none: the method's own preprocessing, e.g. when a
    stored whole-image preprocessing is used, as in ``--test predict``); ``cache``: where training tiles go."""
    if not tile:
        return model
    return TiledModel(model, int(tile), int(overlap), cache, list(reference))
