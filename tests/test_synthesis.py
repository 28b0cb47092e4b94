"""Image-space anomaly synthesis (datasets/synthesis): Perlin noise/masks, textures, blend, GLASS LAS."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from scipy import ndimage

from common.errors import UserError
from datasets.synthesis import (GlassSynthesizer, TexturePool, apply_op, blend, check_sizes, combine_maps, draw_ops,
                                perlin_mask, perlin_noise, perlin_threshold_map, rotate_noise, sample_beta,
                                texture_transform)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _loop_perlin(h, w, sy, sx, angles):
    """Straightforward per-pixel DRAEM Perlin noise."""
    out = np.zeros((h, w))
    fade = lambda t: 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3  # noqa: E731
    for i in range(h):
        for j in range(w):
            y, x = i * sy / h, j * sx / w
            r, c = math.floor(y), math.floor(x)
            v, u = y - r, x - c
            dots = {}
            for dr in (0, 1):
                for dc in (0, 1):
                    a = angles[r + dr, c + dc]
                    dots[dr, dc] = math.cos(a) * (v - dr) + math.sin(a) * (u - dc)
            top = dots[0, 0] + fade(v) * (dots[1, 0] - dots[0, 0])
            bottom = dots[0, 1] + fade(v) * (dots[1, 1] - dots[0, 1])
            out[i, j] = math.sqrt(2) * (top + fade(u) * (bottom - top))
    return out


@pytest.mark.parametrize("h,w,sy,sx", [(8, 12, 2, 3), (16, 16, 4, 1), (6, 9, 1, 3)])
def test_perlin_noise_matches_loop(h, w, sy, sx):
    got = perlin_noise((h, w), (sy, sx), np.random.default_rng(5))
    angles = 2 * math.pi * np.random.default_rng(5).random((sy + 1, sx + 1))
    want = _loop_perlin(h, w, sy, sx, angles)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # Noise vanishes on lattice points (the dot product with a zero offset).
    assert np.allclose(got[:: h // sy, :: w // sx], 0.0, atol=1e-12)


def _bilinear_rotate_clockwise(arr, angle_deg):
    """Exact bilinear rotation, clockwise as displayed (rows point down), zero outside."""
    a = math.radians(angle_deg)
    h, w = arr.shape
    matrix = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])  # output (r,c) -> input (r,c)
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - matrix @ centre
    return ndimage.affine_transform(arr, matrix, offset=offset, order=1, mode="grid-constant", cval=0.0)


@pytest.mark.parametrize("angle", [33.0, -71.5, 90.0])
def test_rotation_equals_independent_bilinear(angle):
    noise = perlin_noise((32, 40), (2, 4), np.random.default_rng(1))
    got = rotate_noise(noise, angle)
    want = _bilinear_rotate_clockwise(noise, angle)
    span = noise.max() - noise.min()
    # cv2 quantises sub-pixel positions to 1/32 px: tiny differences only.
    assert np.abs(got - want).max() < 0.03 * span
    assert np.abs(got - want).mean() < 0.003 * span
    wrong_way = _bilinear_rotate_clockwise(noise, -angle)
    assert np.abs(got - wrong_way).mean() > 10 * np.abs(got - want).mean()


def test_mask_statistics_at_288():
    """glass.md §3.1: mask_l area mean 5.2 %, median 4.7 %, max 31 %; mask_s positive fraction 13.3 %."""
    rng = np.random.default_rng(2024)
    areas, patches = [], []
    for _ in range(200):
        mask_s, mask_l = perlin_mask((3, 288, 288), 36, rng)
        assert mask_s.shape == (36, 36) and mask_l.shape == (288, 288)
        assert mask_s.max() == 1.0
        areas.append(mask_l.mean())
        patches.append(mask_s.mean())
    areas = np.array(areas)
    assert 0.035 < areas.mean() < 0.07
    assert 0.03 < np.median(areas) < 0.065
    # Heavy tail: the max over 200 draws ranges 0.19-0.60 between seeds (reference: 31 %); the 95th percentile
    # is stable (0.12-0.14).
    assert 0.15 < areas.max() < 0.7
    assert 0.09 < np.percentile(areas, 95) < 0.18
    assert 0.09 < np.mean(patches) < 0.18


def test_patch_mask_is_max_pool_and_binary():
    mask_s, mask_l = perlin_mask((64, 96), (8, 12), np.random.default_rng(3))
    want = torch.nn.functional.max_pool2d(torch.from_numpy(mask_l)[None, None], 8)[0, 0].numpy()
    np.testing.assert_array_equal(mask_s, want)
    assert set(np.unique(mask_l)) <= {0.0, 1.0}


def test_combination_modes():
    m1 = np.array([[1, 1, 0, 0]], np.float32)
    m2 = np.array([[1, 0, 1, 0]], np.float32)
    np.testing.assert_array_equal(combine_maps(m1, m2, 0.9), [[1, 1, 1, 0]])
    np.testing.assert_array_equal(combine_maps(m1, m2, 0.5), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(combine_maps(m1, m2, 0.2), m1)
    np.testing.assert_array_equal(combine_maps(m1, m2, 2 / 3), [[1, 0, 0, 0]])


def test_threshold_map_scales_and_threshold():
    rng = np.random.default_rng(9)
    m = perlin_threshold_map((64, 64), rng, max_exponent=1, threshold=0.4, max_angle=0.0)
    # same stream: two scale draws (both 2**0), gradients, angle 0
    rng2 = np.random.default_rng(9)
    rng2.integers(0, 1), rng2.integers(0, 1)
    noise = perlin_noise((64, 64), (1, 1), rng2)
    np.testing.assert_array_equal(m, (noise > 0.4).astype(np.float32))


def test_fg_restriction():
    fg = np.zeros((64, 64), np.float32)
    fg[:, :24] = 1
    rng = np.random.default_rng(4)
    for _ in range(20):
        mask_s, mask_l = perlin_mask((64, 64), 8, rng, fg=torch.from_numpy(fg)[None])
        assert mask_l[:, 24:].max() == 0 and mask_l.max() == 1
        assert mask_s[:, 3:].max() == 0


def test_empty_fg_falls_back_with_warning():
    fg = np.zeros((1, 64, 64), np.float32)
    with pytest.warns(RuntimeWarning, match="foreground"):
        mask_s, mask_l = perlin_mask((64, 64), 8, np.random.default_rng(0), fg=fg, max_tries=50)
    assert mask_s.max() == 1 and mask_l.sum() > 0


@pytest.mark.parametrize("shape,feat", [((280, 280), 35), ((100, 100), 10), ((288, 288), 37), ((256, 256), 0)])
def test_bad_sizes_raise_user_error(shape, feat):
    with pytest.raises(UserError, match="--imagesize"):
        check_sizes(shape, feat)
    with pytest.raises(UserError, match="--imagesize"):
        perlin_mask(shape, feat, np.random.default_rng(0))


def test_blend_formula_and_pixel_space_equivalence():
    rng = np.random.default_rng(0)
    img = rng.random((3, 16, 16)).astype(np.float32)
    tex = rng.random((3, 16, 16)).astype(np.float32)
    m = (rng.random((16, 16)) > 0.5).astype(np.float32)
    beta = 0.3
    out = blend(img, tex, m, beta)
    np.testing.assert_allclose(out[:, m == 0], img[:, m == 0])
    np.testing.assert_allclose(out[:, m == 1], 0.7 * tex[:, m == 1] + 0.3 * img[:, m == 1], rtol=1e-6)
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, np.float32)[:, None, None]
    normed = blend(torch.from_numpy((img - mean) / std), torch.from_numpy((tex - mean) / std), torch.from_numpy(m),
                   beta)
    np.testing.assert_allclose(normed.numpy() * std + mean, out, atol=1e-5)
    # channel-last layout (SLSG works on HWC arrays)
    np.testing.assert_allclose(blend(img.transpose(1, 2, 0), tex.transpose(1, 2, 0), m, beta), out.transpose(1, 2, 0),
                               rtol=1e-6)


def test_beta_distribution_and_clipping():
    rng = np.random.default_rng(1)
    wide = np.array([sample_beta(rng, 0.5, 10.0) for _ in range(500)])
    assert wide.min() == 0.2 and wide.max() == 0.8
    assert ((wide == 0.2) | (wide == 0.8)).mean() > 0.9
    default = np.array([sample_beta(rng) for _ in range(2000)])
    assert abs(default.mean() - 0.5) < 0.01 and abs(default.std() - 0.1) < 0.01
    assert sample_beta(rng, 0.9, 0.0) == 0.8 and sample_beta(rng, 0.35, 0.0) == 0.35


def test_three_distinct_ops_in_drawn_order():
    rng = np.random.default_rng(0)
    seen, unsorted = set(), 0
    for _ in range(300):
        idx = [i for i, _ in draw_ops(rng)]
        assert len(idx) == 3 and len(set(idx)) == 3 and all(0 <= i < 9 for i in idx)
        seen.update(idx)
        unsorted += idx != sorted(idx)
    assert seen == set(range(9))
    assert unsorted > 100  # drawn order kept, not sorted


def _pil(seed=0, size=(40, 30)):
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr)


def test_ops_match_pil():
    img = _pil()
    same = lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # noqa: E731
    same(apply_op(img, 0, {"factor": 1.15}), ImageEnhance.Contrast(img).enhance(1.15))
    same(apply_op(img, 1, {"factor": 0.85}), ImageEnhance.Brightness(img).enhance(0.85))
    same(apply_op(img, 3, {}), ImageOps.mirror(img))
    same(apply_op(img, 4, {}), ImageOps.flip(img))
    gray = np.asarray(apply_op(img, 5, {}))
    assert gray.shape == (30, 40, 3) and (gray[..., 0] == gray[..., 2]).all()
    same(apply_op(img, 6, {}), ImageOps.autocontrast(img))
    same(apply_op(img, 7, {}), ImageOps.equalize(img))
    rotated = np.asarray(apply_op(Image.new("RGB", (41, 41), (200, 100, 50)), 8, {"angle": 45.0}))
    assert (rotated[0, 0] == 0).all() and (rotated[20, 20] == (200, 100, 50)).all()
    from torchvision.transforms.functional import adjust_hue  # the v1 PIL kernel the reference ran
    same(apply_op(img, 2, {"saturation": 1.1, "hue": 0.1, "hue_first": False}),
         adjust_hue(ImageEnhance.Color(img).enhance(1.1), 0.1))
    same(apply_op(img, 2, {"saturation": 0.9, "hue": -0.15, "hue_first": True}),
         ImageEnhance.Color(adjust_hue(img, -0.15)).enhance(0.9))


def test_texture_transform_without_ops_is_resize_crop_normalise():
    img = _pil(1, (60, 80))
    out = texture_transform(img, 40, 32, IMAGENET_MEAN, IMAGENET_STD, np.random.default_rng(0), ops=[])
    resized = img.resize((40, 53), Image.BILINEAR)  # shorter side 40, PIL antialiased bilinear
    crop = np.asarray(resized)[10:42, 4:36].astype(np.float32) / 255
    want = (crop - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.shape == (3, 32, 32)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), want, atol=1e-5)


def _texture_dir(root):
    for cat in ("banded", "dotted"):
        (root / cat).mkdir(parents=True)
        for k in range(2):
            _pil(hash((cat, k)) % 1000, (48, 48)).save(root / cat / f"{cat}_{k}.jpg", quality=95)
    _pil(7).save(root / "banded" / "upper.JPG", format="JPEG")
    _pil(8).save(root / "dotted" / "extra.png")
    (root / "dotted" / ".hidden.png").write_bytes(b"x")
    return root


def test_texture_pool_globs(tmp_path):
    root = _texture_dir(tmp_path / "images")
    ref = TexturePool(root)
    assert [p.split("/")[-1] for p in ref.paths] == ["banded_0.jpg", "banded_1.jpg", "dotted_0.jpg", "dotted_1.jpg"]
    loose = TexturePool(root, reference_glob=False)
    assert len(loose.paths) == 6 and not any(".hidden" in p for p in loose.paths)
    picks = {TexturePool(root).choose(np.random.default_rng(s)) for s in range(40)}
    assert picks == set(ref.paths)
    assert TexturePool(root).sample(np.random.default_rng(0)).mode == "RGB"


def test_texture_pool_errors(tmp_path):
    with pytest.raises(UserError, match="--augpath"):
        TexturePool(tmp_path / "missing")
    (tmp_path / "cat").mkdir()
    _pil().save(tmp_path / "cat" / "a.png")
    with pytest.raises(UserError, match="--augpath"):
        TexturePool(tmp_path)


def _prep(size=64):
    def image(pil):
        t = torch.from_numpy(np.asarray(pil.convert("RGB").resize((size, size)), np.float32) / 255).permute(2, 0, 1)
        return (t - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    return SimpleNamespace(resize=size, imagesize=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, image=image)


@pytest.mark.parametrize("rand_aug", [True, False])
def test_glass_synthesizer_determinism_and_masks(tmp_path, rand_aug):
    root = _texture_dir(tmp_path / "images")
    prep = _prep()
    synth = GlassSynthesizer(root, prep, downsampling=8, mean=0.5, std=0.1, rand_aug=rand_aug)
    image = prep.image(_pil(3, (64, 64)))
    fg = torch.zeros(1, 64, 64)
    fg[:, 16:48, 16:48] = 1
    a = synth(image, fg, np.random.default_rng(11))
    b = synth(image, fg, np.random.default_rng(11))
    c = synth(image, fg, np.random.default_rng(12))
    for key in ("aug", "mask_s", "mask_l"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["aug"], c["aug"])
    assert a["aug"].shape == (3, 64, 64) and a["mask_s"].shape == (8, 8) and a["mask_l"].shape == (64, 64)
    m = a["mask_l"].bool()
    assert m.any() and not m[~fg[0].bool()].any()
    assert torch.equal(a["aug"][:, ~m], image[:, ~m])
    assert not torch.allclose(a["aug"][:, m], image[:, m])


def test_glass_synthesizer_bad_imagesize(tmp_path):
    root = _texture_dir(tmp_path / "images")
    with pytest.raises(UserError, match="--imagesize"):
        GlassSynthesizer(root, _prep(100), downsampling=8)
    with pytest.raises(UserError, match="--imagesize"):
        GlassSynthesizer(root, _prep(280), downsampling=8)
