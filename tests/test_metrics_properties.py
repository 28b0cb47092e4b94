"""Metric properties and brute-force oracles (one threshold at a time, written from the definitions)."""
from __future__ import annotations

from bisect import bisect_right

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

import metrics
from common.errors import UserError

LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)


def _trapezoid_to(x, y, limit):
    """The official ``trapezoid(x, y, x_max)`` (bisect, interpolate, cut), divided by the limit."""
    x, y = list(x), list(y)
    correction = 0.0
    if limit not in x:
        i = bisect_right(x, limit)
        y_at = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
        correction = 0.5 * (y_at + y[i - 1]) * (limit - x[i - 1])
    pts = [(a, b) for a, b in zip(x, y) if a <= limit]
    area = sum(0.5 * (pts[k][1] + pts[k - 1][1]) * (pts[k][0] - pts[k - 1][0]) for k in range(1, len(pts)))
    return (area + correction) / limit


def _brute_au_pro(masks, maps, limit):
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(i, lab == r) for r in range(1, n + 1)]
    normal = ~masks.astype(bool)
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        hit = maps >= t
        ys.append(min(np.mean([hit[i][r].mean() for i, r in regions]), 1.0))
        xs.append(min(hit[normal].sum() / normal.sum(), 1.0))
    return _trapezoid_to(xs + [1.0], ys + [1.0], limit)


def _random_case(rng, n=5, h=12, w=14, levels=6):
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(1, n):
        for _ in range(rng.integers(1, 3)):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            masks[i, y:y + rng.integers(1, 4), x:x + rng.integers(1, 4)] = 1
    masks[2, 0, 0] = masks[2, 1, 1] = 1  # diagonal neighbours: one region under 8-connectivity
    maps = rng.integers(0, levels, size=(n, h, w)).astype(np.float32) + 2.0 * masks * rng.random((n, h, w)) // 1
    return masks, maps.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_au_pro_equals_brute_force_with_ties(seed):
    masks, maps = _random_case(np.random.default_rng(seed))
    got = metrics.au_pro_many(masks, maps, LIMITS)
    for lim in LIMITS:
        want = _brute_au_pro(masks, maps, lim)
        assert abs(got[lim] - want) <= 1e-12, (lim, got[lim], want)
        assert abs(metrics.au_pro(masks, maps, lim) - want) <= 1e-12, lim  # truncated sort for a single limit


def test_au_pro_cut_inside_a_run_of_tied_normal_scores():
    # The FPR limit falls in the middle of many tied normal pixels: the truncated sort must count all ties.
    rng = np.random.default_rng(5)
    masks, _ = _random_case(rng, n=4, h=10, w=10)
    maps = np.where(masks, 3.0, rng.choice([0.0, 1.0, 2.0], size=masks.shape, p=[0.5, 0.4, 0.1])).astype(np.float32)
    maps[masks.astype(bool)] = rng.choice([1.0, 2.0, 3.0], size=int(masks.sum()))
    for lim in (0.05, 0.1, 0.3, 0.5):
        assert abs(metrics.au_pro(masks, maps, lim) - _brute_au_pro(masks, maps, lim)) <= 1e-12, lim


def test_au_pro_oracles():
    rng = np.random.default_rng(0)
    masks, _ = _random_case(rng)
    perfect = np.where(masks, 1.0 + rng.random(masks.shape), rng.random(masks.shape)).astype(np.float32)
    constant = np.full(masks.shape, 0.5, np.float32)
    for lim in LIMITS:
        assert metrics.au_pro(masks, perfect, lim) == pytest.approx(1.0, abs=1e-12)
        assert metrics.au_pro(masks, constant, lim) == pytest.approx(lim / 2, abs=1e-12)
    assert metrics.pixel_auroc(masks, constant) == 0.5
    assert metrics.pixel_ap(masks, constant) == pytest.approx(masks.mean(), abs=1e-12)


def test_permutation_invariance():
    rng = np.random.default_rng(3)
    masks, maps = _random_case(rng, n=6)
    maps = maps + rng.random(maps.shape).astype(np.float32)
    perm = rng.permutation(len(maps))
    labels = masks.reshape(len(masks), -1).any(1).astype(int)
    a = metrics.evaluate_all(labels, maps.max((1, 2)), masks, maps)
    b = metrics.evaluate_all(labels[perm], maps[perm].max((1, 2)), masks[perm], maps[perm])
    for key in metrics.KEYS:
        assert a[key] == pytest.approx(b[key], abs=1e-12), key


@pytest.mark.parametrize("seed", [0, 1])
def test_ranking_metrics_equal_sklearn_on_heavy_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    scores = rng.integers(0, 7, 400).astype(np.float64) + labels * rng.integers(0, 2, 400)
    assert metrics.image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.image_ap(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    p, r, thr = precision_recall_curve(labels, scores)
    f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0)[:-1]
    best, at = metrics.f1_max(labels, scores)
    assert best == pytest.approx(f1.max(), abs=1e-12) and at == thr[np.argmax(f1)]
    masks = labels.reshape(4, 10, 10).astype(bool)
    maps = scores.reshape(4, 10, 10).astype(np.float32)
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.pixel_f1_max(masks, maps)[0] == pytest.approx(f1.max(), abs=1e-12)


def test_small_oracle_from_reference_page():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert metrics.image_auroc(y, s) == 0.75
    assert metrics.image_ap(y, s) == pytest.approx(0.8333333333333333, abs=1e-12)
    assert metrics.image_auroc(y, [0.3] * 4) == 0.5


def test_torch_device_path_equals_numpy():
    pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    masks, maps = _random_case(rng)
    labels = masks.reshape(len(masks), -1).any(1).astype(int)
    a = metrics.evaluate_all(labels, maps.max((1, 2)), masks, maps)
    b = metrics.evaluate_all(labels, maps.max((1, 2)), masks, maps, device="cpu")
    assert a == b
    for lim in (0.05, 0.3):
        assert metrics.au_pro(masks, maps, lim, device="cpu") == metrics.au_pro(masks, maps, lim)


def _brute_au_spro(maps, channels, limit):
    pool = np.unique(np.concatenate([m.ravel() for m in maps]))
    thresholds = np.r_[pool[::-1], pool[0] - 1.0]  # strict ">": from nothing above to everything above
    n_ch = sum(len(c) for c in channels)
    xs, ys = [], []
    for t in thresholds:
        fp = tn = 0
        spro = 0.0
        for amap, chans in zip(maps, channels):
            free = np.ones(amap.shape, bool)
            for mask, sat in chans:
                free &= ~mask
                spro += min((amap[mask] > t).sum() / sat, 1.0)
            fp += (amap[free] > t).sum()
            tn += (amap[free] <= t).sum()
        xs.append(fp / (fp + tn))
        ys.append(spro / n_ch)
    return _trapezoid_to(xs, ys, limit)


def test_au_spro_equals_brute_force_with_overlapping_channels():
    rng = np.random.default_rng(7)
    maps, channels = [], []
    for i in range(5):
        amap = rng.integers(0, 8, size=(9, 11)).astype(np.float32)
        chans = []
        for _ in range(i % 3):
            mask = np.zeros(amap.shape, bool)
            y, x = rng.integers(0, 6, 2)
            mask[y:y + 4, x:x + 5] = True  # channels of one image may overlap
            amap[mask] += rng.integers(0, 3)
            chans.append((mask, metrics.saturation_area(int(mask.sum()), [0.5, 7, 1.0][len(chans)],
                                                         [True, False, True][len(chans)])))
        maps.append(amap)
        channels.append(chans)
    got = metrics.au_spro(maps, channels)
    for lim in LIMITS:
        assert got[lim] == pytest.approx(_brute_au_spro(maps, channels, lim), abs=1e-12), lim
    constant = [np.zeros_like(m) for m in maps]
    for lim, value in metrics.au_spro(constant, channels).items():
        assert value == pytest.approx(lim / 2, abs=1e-12)


def test_saturation_area_rules():
    assert metrics.saturation_area(63, 0.5, True) == 31
    assert metrics.saturation_area(377, 400, False) == 377
    assert metrics.saturation_area(500, 400, False) == 400
    with pytest.warns(RuntimeWarning, match="saturation area 0"):
        value = metrics.au_spro([np.zeros((4, 4))], [[(np.eye(4, dtype=bool), 0)]])
    assert np.isnan(value[0.05])


def test_undefined_inputs_give_nan_with_warning():
    masks = np.zeros((2, 4, 4), np.uint8)
    maps = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="region"):
        assert np.isnan(metrics.au_pro(masks, maps))
    with pytest.warns(RuntimeWarning, match="both normal and anomalous"):
        assert np.isnan(metrics.pixel_auroc(masks, maps))
    masks[1, 1:3, 1:3] = 1
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):
        assert np.isnan(metrics.au_pro(masks, bad))
    with pytest.warns(RuntimeWarning, match="constant map"):
        assert np.isnan(metrics.glass_pro(masks, np.ones_like(maps)))
    with pytest.warns(RuntimeWarning):
        out = metrics.evaluate_all([0, 1], [0.1, 0.2], masks, np.ones_like(maps))
    assert np.isnan(out["pixel_pro"]) and out["au_pro"] == pytest.approx(0.15)


def test_bad_inputs_raise_user_error():
    maps = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(UserError, match="binary"):
        metrics.au_pro(np.full((2, 4, 4), 255, np.uint8), maps)
    with pytest.raises(UserError, match="shape"):
        metrics.pixel_auroc(np.zeros((2, 4, 5), bool), maps)
    with pytest.raises(ValueError, match="limit"):
        metrics.au_pro(np.eye(4, dtype=bool)[None].repeat(2, 0), maps, 1.5)


def _brute_glass_pro(masks, maps):
    """GLASS ``compute_pro`` per threshold as its numpy-1 environment evaluates it (float64 step, float32 compare)."""
    import cv2
    from skimage import measure

    low, high = maps.min(), maps.max()
    delta = np.float64(high - low) / 200
    start = np.float64(low)
    thresholds = start + np.arange(int(np.ceil(np.float64(high - low) / delta))) * ((start + delta) - start)
    rows = []
    for th in thresholds:
        binary = maps > np.float32(th)
        pros = []
        for b, m in zip(binary, masks):
            dilated = cv2.dilate(b.astype(np.uint8), np.ones((5, 5), np.uint8))
            for region in measure.regionprops(measure.label(m.astype(int))):
                pros.append(dilated[region.coords[:, 0], region.coords[:, 1]].sum() / region.area)
        inverse = 1 - masks
        rows.append((np.mean(pros), np.logical_and(inverse, binary).sum() / inverse.sum()))
    pro, fpr = np.array(rows).T
    pro, fpr = pro[fpr < 0.3], fpr[fpr < 0.3]
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min() + 1e-10)
    return -np.trapezoid(pro, fpr)


def test_glass_pro_equals_reference_loop_with_fractional_masks():
    # Resized GT as GLASS gets it: fractional edges; only pixels == 1.0 form regions, FPR counts every pixel < 1.
    rng = np.random.default_rng(11)
    masks = np.zeros((4, 20, 24))
    masks[1, 3:9, 4:12] = 1.0
    masks[1, 2, 4:12] = 0.4
    masks[2, 10:13, 15:22] = 1.0
    masks[3, 0:2, 0:2] = 1.0
    masks[3, 5, 5] = 0.7
    maps = (rng.random(masks.shape) * 0.6 + masks * 0.5).astype(np.float32)
    assert metrics.glass_pro(masks, maps) == pytest.approx(_brute_glass_pro(masks, maps), abs=1e-12)
