"""Reading images and masks from disk: format conversion and clear errors.

Images come back as 8-bit RGB PIL images whatever their storage (grayscale, grayscale + alpha, RGBA, palette,
bilevel, CMYK, 16-bit or float), masks as 8-bit "L" images with every defect pixel at 255.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a visible regular file with an accepted image extension (any case)."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, sorted by file name (Python string order, as ``sorted(listdir)``).

    Hidden files, sub-folders and files with other extensions (``.DS_Store``, ``Thumbs.db``, ``README.txt``) are
    skipped."""
    folder = Path(folder)
    for path in folder.iterdir():
        if path.is_symlink() and not path.exists() and not path.name.startswith("."):
            warnings.warn(f"skipping {path} (a symbolic link to a missing file)", stacklevel=2)
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def list_dirs(folder: str | os.PathLike) -> list[str]:
    """Names of the visible sub-folders of ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def open_image(path: Path, max_side: int | None = None) -> Image.Image:
    """Open and decode a file in its stored mode; ``UserError`` naming it when missing or corrupt.

    ``max_side``: a huge JPEG is decoded at a reduced scale (draft mode) whose shorter side stays >= ``max_side``."""
    path = Path(path)
    try:
        image = Image.open(path)
        if max_side and image.format == "JPEG":
            image.draft(image.mode, (max_side, max_side))
        image.load()
        return image
    except FileNotFoundError as exc:
        raise UserError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _open_tiff(path, exc)
        raise UserError(f"cannot read image {path} (corrupt or not an image): {exc}") from exc


def _open_tiff(path: Path, first_error: Exception) -> Image.Image:
    """TIFFs PIL cannot decode (16-bit RGB, float, multi-sample) through tifffile."""
    try:
        import tifffile

        array = np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for bad files
        raise UserError(f"cannot read image {path} (corrupt or not an image): {first_error}") from exc
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage
    if array.ndim not in (2, 3):
        raise UserError(f"cannot read image {path}: unsupported array shape {array.shape}")
    array = _to_uint8(array)
    if array.ndim == 3:
        array = array[..., :3] if array.shape[-1] >= 3 else np.repeat(array[..., :1], 3, axis=-1)
    return Image.fromarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a 16-bit (high byte), 32-bit integer or float ([0, 1] or [0, 255]) array to uint8."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64))
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0  # float images stored in [0, 1]
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    peak = int(array.max(initial=0))
    if array.dtype.itemsize == 2 or 255 < peak <= 65535:
        # the high byte, as PIL itself reduces 16-bit RGB files
        return (np.clip(array.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    if peak <= 255:
        return np.clip(array, 0, 255).astype(np.uint8)
    return np.clip(np.rint(array.astype(np.float64) * (255.0 / peak)), 0, 255).astype(np.uint8)


def _as_8bit(image: Image.Image) -> Image.Image:
    """16-bit ("I;16*"), 32-bit ("I") and float ("F") images as "L"; every other mode unchanged."""
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L")
    return image


def read_rgb(path: str | os.PathLike, max_side: int | None = None) -> Image.Image:
    """An image as 8-bit RGB. Grayscale is replicated to 3 channels; alpha is dropped (as ``convert("RGB")``, the
    reference's reader); palette images are expanded; 16-bit and float images are scaled to 8 bits.

    The one reader of training, test and predict images. ``max_side``: an image whose shorter side is many times
    that is decoded at a reduced size (never at full resolution). Raises ``UserError`` naming the file when it is
    missing, corrupt or not an image."""
    return to_rgb(open_image(Path(path), max_side), max_side)


def to_rgb(image: Image.Image | np.ndarray, max_side: int | None = None) -> Image.Image:
    """An opened PIL image or an (H, W[, C]) array as 8-bit RGB, converted exactly as :func:`read_rgb` converts."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.ascontiguousarray(image)) if np.asarray(image).dtype == np.uint8 else \
            Image.fromarray(_to_uint8(np.asarray(image)))
    image = _as_8bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    image = image if image.mode == "RGB" else image.convert("RGB")
    if max_side and min(image.size) >= 2 * max_side:
        image = image.reduce(min(image.size) // max_side)
    return image


def read_mask(path: str | os.PathLike, channel: int | None = None) -> Image.Image:
    """A mask as an 8-bit "L" image with 0 = background and 255 = defect.

    Non-zero = defect: any non-zero value (in any channel, or in ``channel`` only when given) becomes 255, so masks
    stored as 0/1, as VisA's small label values, as colours or at 16 bits all read the same. For the usual 0/255
    masks (MVTec AD) the result equals the reference's ``convert("L")``."""
    path = Path(path)
    image = _as_8bit(open_image(path))
    if image.mode == "P":
        image = image.convert("RGBA")
    array = np.asarray(image)
    if array.ndim == 3:
        if channel is not None:
            array = array[..., channel]
        elif image.mode in ("LA", "PA"):
            array = array[..., 0]  # the alpha channel is not part of the mask
        else:
            array = array[..., :3].max(axis=-1)
    return Image.fromarray(np.where(array > 0, 255, 0).astype(np.uint8), mode="L")


def read_mask_float(path: str | os.PathLike) -> Image.Image:
    """A mask as a float "F" image with values {0.0, 1.0} (non-zero = defect); resized in float mode it keeps every
    partially covered pixel above zero, as the VisA reference (``convert("F")`` then ``> 0``)."""
    return Image.fromarray((np.asarray(read_mask(path)) > 0).astype(np.float32), mode="F")
