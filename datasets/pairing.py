"""Pairing test images with their ground-truth mask files."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from common.errors import UserError

PAIRINGS = ("stem", "order")


def _describe(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def pair_masks(images: Sequence[Path], masks: Sequence[Path], folder: Path, mode: str = "stem") -> list[Path]:
    """For each image (sorted), its mask file from ``folder`` (the candidates ``masks``, sorted).

    ``stem``: ``<stem>_mask.<ext>`` first, then ``<stem>.<ext>`` (any accepted extension, any case). If the names do
    not correspond but the counts match, fall back to sorted position with a warning. ``order``: sorted position
    (the GLASS reference; names ignored). Any other mismatch raises ``UserError`` naming ``folder``."""
    if mode not in PAIRINGS:
        raise UserError(f"--mask_pairing: unknown mode {mode!r}; choose from {', '.join(PAIRINGS)}")
    if mode == "order":
        if len(images) != len(masks):
            raise UserError(f"mask folder {folder} holds {len(masks)} masks for {len(images)} test images "
                            f"(--mask_pairing order needs equal counts)")
        return list(masks)
    by_stem: dict[str, Path] = {}
    for mask in masks:
        by_stem.setdefault(mask.stem.lower(), mask)
    paired: list[Path | None] = []
    for image in images:
        stem = image.stem.lower()
        paired.append(by_stem.get(f"{stem}_mask") or by_stem.get(stem))
    used = {p for p in paired if p is not None}
    missing = [img.name for img, p in zip(images, paired) if p is None]
    extra = [m.name for m in masks if m not in used]
    duplicated = len(used) != sum(p is not None for p in paired)
    if not missing and not extra and not duplicated:
        return [p for p in paired if p is not None]
    if len(images) == len(masks):
        warnings.warn(f"mask file names in {folder} do not match the image names "
                      f"(no mask for {_describe(missing) or '-'}; unmatched masks {_describe(extra) or '-'}); "
                      f"pairing by sorted position instead", stacklevel=3)
        return list(masks)
    detail = []
    if missing:
        detail.append(f"no mask for {_describe(missing)}")
    if extra:
        detail.append(f"masks without an image: {_describe(extra)}")
    raise UserError(f"unpaired ground-truth masks in {folder}: {len(images)} images, {len(masks)} masks; "
                    f"{'; '.join(detail) or 'several images share one mask'} "
                    f"(expected <stem>_mask.png or <stem>.png per image)")
