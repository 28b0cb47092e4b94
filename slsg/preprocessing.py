"""SLSG image preprocessing: both sides resized to the input size with PIL LANCZOS (aspect not kept)."""
from __future__ import annotations

from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_lanczos(image: Image.Image, size: int) -> Image.Image:
    """``convert("RGB")`` then resize to (size, size) with LANCZOS, as the reference's ``Resize(..., ANTIALIAS)``."""
    return image.convert("RGB").resize((size, size), Image.LANCZOS)
