"""Preprocessing numerics against hand-made PIL pipelines, torchvision, and the reference rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from common.errors import UserError
from datasets.preprocess import Preprocessing, binarize_gt, glass_preprocessing, slsg_preprocessing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _random_rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _by_hand(pil: Image.Image, size: tuple[int, int], crop: int, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    """Resize to ``size`` (W, H), centre crop ``crop`` with the offsets spelled out, normalise in float32."""
    resized = pil.resize(size, resample)
    left, top = round((size[0] - crop) / 2), round((size[1] - crop) / 2)
    array = np.asarray(resized.crop((left, top, left + crop, top + crop)), np.float32) / np.float32(255)
    return ((array - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1)


@pytest.mark.parametrize("w,h", [(60, 40), (40, 60), (45, 45)])
def test_shorter_side_resize_then_center_crop(w, h):
    pil = _random_rgb(w, h)
    pre = Preprocessing(36, 32, MEAN, STD)
    short, long = min(w, h), max(w, h)
    new = (36, int(36 * long / short)) if w <= h else (int(36 * long / short), 36)
    out = pre.image(pil)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _by_hand(pil, new, 32), atol=1e-6)
    # and bit-identical to the reference's torchvision pipeline
    ref = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])(pil)
    assert torch.equal(out, ref)


def test_odd_crop_offsets_match_torchvision_rounding():
    pil = _random_rgb(47, 33, seed=3)
    pre = Preprocessing((33, 47), (20, 30), MEAN, STD)
    ref = T.Compose([T.CenterCrop((20, 30)), T.ToTensor(), T.Normalize(MEAN, STD)])(pil)
    assert torch.equal(pre.image(pil), ref)


def test_crop_larger_than_image_pads_with_zeros_like_torchvision():
    pil = _random_rgb(20, 16, seed=4)
    pre = Preprocessing((16, 20), 24, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    ref = T.Compose([T.CenterCrop(24), T.ToTensor()])(pil)
    assert torch.equal(pre.image(pil), ref)
    assert float(pre.image(pil)[:, 0].abs().sum()) == 0.0  # padded top row


def test_glass_toothbrush_wood_rule_and_judge_square_rule():
    assert glass_preprocessing("toothbrush", 288, 288).resize == 329
    assert glass_preprocessing("wood", 288, 288).resize == 329
    assert glass_preprocessing("wood", 256, 224).resize == round(224 * 329 / 288)  # from imagesize, as the ref
    assert glass_preprocessing("bottle", 288, 288).resize == 288
    judge = glass_preprocessing("wood", 288, 288, distribution=1)
    assert judge.resize == (288, 288) and judge.square
    # numerics of the 329 rule on a non-square image: shorter side -> 41 (= round(36 * 329 / 288)), crop 36
    pil = _random_rgb(50, 70, seed=5)
    pre = glass_preprocessing("toothbrush", 36, 36, MEAN, STD)
    assert pre.resize == 41
    np.testing.assert_allclose(pre.image(pil).numpy(), _by_hand(pil, (41, int(41 * 70 / 50)), 36), atol=1e-6)
    # judge mode squashes without keeping the aspect ratio
    judge = glass_preprocessing("toothbrush", 36, 36, MEAN, STD, distribution=1)
    np.testing.assert_allclose(judge.image(pil).numpy(), _by_hand(pil, (36, 36), 36), atol=1e-6)


def test_slsg_lanczos_squash():
    pil = _random_rgb(64, 40, seed=6)
    pre = slsg_preprocessing(32, MEAN, STD)
    expected = _by_hand(pil, (32, 32), 32, Image.Resampling.LANCZOS)
    np.testing.assert_allclose(pre.image(pil).numpy(), expected, atol=1e-6)
    bilinear = _by_hand(pil, (32, 32), 32)
    assert np.abs(pre.image(pil).numpy() - bilinear).max() > 1e-3  # the filter matters


def test_mask_resize_and_binarisation_rules():
    array = np.zeros((40, 40), np.uint8)
    array[10:30, 7:23] = 255
    pil = Image.fromarray(array, mode="L")
    pre = Preprocessing(30, 28, MEAN, STD)
    mask = pre.mask(pil)
    by_hand = np.asarray(pil.resize((30, 30), Image.Resampling.BILINEAR).crop((1, 1, 29, 29)), np.float32) / 255
    np.testing.assert_array_equal(mask[0].numpy(), by_hand)
    fractional = (by_hand > 0) & (by_hand < 1)
    assert fractional.any()
    assert torch.equal(binarize_gt(mask, "half")[0], torch.from_numpy(by_hand >= 0.5).float())
    assert torch.equal(binarize_gt(mask, "glass")[0], torch.from_numpy(by_hand == 1.0).float())
    assert torch.equal(binarize_gt(mask, "nonzero")[0], torch.from_numpy(by_hand > 0).float())
    counts = [int(binarize_gt(mask, r).sum()) for r in ("glass", "half", "nonzero")]
    assert counts[0] < counts[1] < counts[2]
    with pytest.raises(UserError, match="--gt_rule"):
        binarize_gt(mask, "bogus")


def test_float_mask_keeps_float_resize():
    array = np.zeros((40, 40), np.float32)
    array[10:30, 7:23] = 1.0
    pre = Preprocessing(30, 30)
    mask = pre.mask(Image.fromarray(array, mode="F"))
    expected = np.asarray(Image.fromarray(array, mode="F").resize((30, 30), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(mask[0].numpy(), expected)


def test_to_dict_round_trip_and_validation():
    for pre in (glass_preprocessing("wood", 288, 288), slsg_preprocessing(),
                Preprocessing((100, 150), (96, 128), (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), "bicubic")):
        data = pre.to_dict()
        import json

        assert Preprocessing.from_dict(json.loads(json.dumps(data))) == pre
    with pytest.raises(UserError, match="--imagesize"):
        Preprocessing(288, 0)
    with pytest.raises(UserError, match="interpolation"):
        Preprocessing(288, 288, interpolation="cubic-ish")
    with pytest.raises(UserError, match="lacks"):
        Preprocessing.from_dict({"resize": 288})
