"""A DTD-like texture folder for ``--augpath`` built offline: ``<output>/<category>/<category>_NNNN.jpg``.

The images come from the demo generator's texture source (``datasets.demodata.sources.dtd_images``: photos that ship
inside scikit-image and procedural textures), so a first run needs no DTD download. The folder has the layout GLASS's
``--augpath`` glob (``*/*.jpg``) and SLSG's texture list read."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import UserError

AUGPATH_HINT = ("python -m datasets.prepare textures --output TEXTURES (builds a DTD-like folder from textures that "
                "ship offline), then pass --augpath TEXTURES; or download DTD and pass --augpath <dtd>/images")


def build_texture_folder(output: str | os.PathLike, per_category: int = 10, side: int = 300, seed: int = 0) -> int:
    """Write the folder; returns the number of images. Deterministic in ``seed``; existing files are overwritten."""
    from common.atomic import atomic_write_bytes
    from datasets.demodata.sources import dtd_images

    if per_category < 1 or side < 16:
        raise UserError(f"--per_category must be >= 1 and --side >= 16 (got {per_category}, {side})")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"--output {out} exists and is not a folder")
    count = 0
    for category, images in dtd_images(per_category, side, np.random.default_rng(seed)).items():
        for index, image in enumerate(images):
            buffer = io.BytesIO()
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=95)
            atomic_write_bytes(out / category / f"{category}_{index:04d}.jpg", buffer.getvalue())
            count += 1
    return count
