"""Connected ground-truth regions (8-connectivity, one labelling per image), as used by every PRO variant."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Regions:
    """Regions of a stack of (N, H, W) masks, stored only at the mask pixels.

    ``ids`` (P,) int64: region id (0..count-1, unique over the stack) of every positive pixel, in the order of
    ``masks[masks]`` (C order); ``sizes`` (count,) int64 pixels per region.
    """

    ids: np.ndarray
    sizes: np.ndarray

    @property
    def count(self) -> int:
        return int(self.sizes.size)


def label_regions(masks: np.ndarray) -> Regions:
    """8-connected components of each (H, W) bool mask of a (N, H, W) bool stack; components never span images."""
    parts, offset = [], 0
    for mask in masks:
        if not mask.any():
            continue
        n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        parts.append(lab[mask].astype(np.int64) + (offset - 1))
        offset += n - 1
    ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return Regions(ids, np.bincount(ids, minlength=offset).astype(np.int64))
