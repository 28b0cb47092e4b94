"""Image and mask reading: mode conversions, file filters, corrupt files."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from common.errors import UserError
from datasets.image_io import list_images, read_mask, read_rgb


def test_gray_rgba_palette_and_16bit_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (8, 10), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    out = np.asarray(read_rgb(tmp_path / "gray.png"))
    assert out.shape == (8, 10, 3) and all((out[..., c] == gray).all() for c in range(3))

    rgba = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(np.asarray(read_rgb(tmp_path / "rgba.png")), rgba[..., :3])

    palette = Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).quantize(8)
    palette.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(np.asarray(read_rgb(tmp_path / "pal.png")), np.asarray(palette.convert("RGB")))

    deep = rng.integers(0, 65536, (8, 10)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = np.asarray(read_rgb(tmp_path / "deep.png"))
    np.testing.assert_array_equal(out[..., 1], (deep >> 8).astype(np.uint8))  # not clipped at 255

    deep_rgb = rng.integers(0, 65536, (8, 10, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep_rgb.TIF", deep_rgb)
    out = np.asarray(read_rgb(tmp_path / "deep_rgb.TIF"))
    np.testing.assert_array_equal(out, (deep_rgb >> 8).astype(np.uint8))


def test_masks_any_nonzero_is_defect(tmp_path):
    values = np.array([[0, 1, 2], [0, 128, 255]], np.uint8)
    Image.fromarray(values, mode="L").save(tmp_path / "m.png")
    np.testing.assert_array_equal(np.asarray(read_mask(tmp_path / "m.png")), (values > 0) * 255)
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[0, 1, 2] = 1  # a faint blue pixel vanishes under convert("L"): it must still count
    Image.fromarray(colour).save(tmp_path / "c.png")
    assert np.asarray(read_mask(tmp_path / "c.png"))[0, 1] == 255
    assert np.asarray(read_mask(tmp_path / "c.png", channel=0)).max() == 0


def test_corrupt_or_missing_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match="broken.png"):
        read_rgb(bad)
    with pytest.raises(UserError, match="missing.png"):
        read_rgb(tmp_path / "missing.png")
    truncated = tmp_path / "trunc.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(UserError, match="trunc.jpg"):
        read_rgb(truncated)


def test_listing_accepts_extensions_in_any_case_and_skips_the_rest(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.JPEG", "d.bmp", "e.tif", "f.TIFF"):
        Image.new("RGB", (4, 4)).save(tmp_path / name, format={"b": "PNG", "a": "JPEG", "c": "JPEG", "d": "BMP",
                                                             "e": "TIFF", "f": "TIFF"}[name[0]])
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "._a.jpg").write_bytes(b"junk")  # macOS resource fork: hidden
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.JPEG", "d.bmp", "e.tif", "f.TIFF"]
