"""SLSG image preprocessing: both sides resized to the input size with PIL LANCZOS (aspect not kept)."""
from __future__ import annotations

from PIL import Image

from common.backbone import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported for the fixture test)


def resize_lanczos(image: Image.Image, size: int) -> Image.Image:
    """``convert("RGB")`` then resize to (size, size) with LANCZOS, as the reference's ``Resize(..., ANTIALIAS)``."""
    return image.convert("RGB").resize((size, size), Image.LANCZOS)
