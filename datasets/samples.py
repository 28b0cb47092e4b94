"""The one record every loader produces: where an image is, what it is, where its ground truth is."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sample:
    """One image of a dataset split.

    ``image_path``, ``mask_path``, ``defect_channels`` and ``fg_mask_path`` are absolute path strings.
    ``label`` is 1 for an anomalous image, 0 for a normal one. ``anomaly_type`` is the folder the image came from
    (``good``, ``color``, ``logical_anomalies``, ... ; VisA read from its CSV uses ``good`` / ``bad`` like its
    converted layout). ``mask_path`` is ``None`` for normal images and for anomalies without ground truth; for MVTec
    LOCO in its official layout it is the per-image ground-truth *folder* and ``defect_channels`` lists the PNG of
    every defect instance in it. ``fg_mask_path`` is set only for training samples loaded with ``fg=True``.
    """

    image_path: str
    label: int
    anomaly_type: str
    mask_path: str | None
    defect_channels: list[str] | None = None
    fg_mask_path: str | None = None
