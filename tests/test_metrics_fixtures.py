"""Metrics against the values the official MVTec AD / LOCO code, GLASS and scikit-learn produced (fixtures/metrics)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import metrics
from metrics.spro import saturation_area


@pytest.fixture(scope="module")
def cases(fixtures_dir):
    folder = fixtures_dir / "metrics"
    data = np.load(folder / "pixel_cases.npz")
    expected = json.loads((folder / "expected.json").read_text())
    names = json.loads(str(data["case_names"]))
    return [(n, data[n + "__masks"], data[n + "__maps"], expected["cases"][n]) for n in names]


def test_exact_au_pro_matches_official_mvtec_code(cases):
    for name, masks, maps, exp in cases:
        got = metrics.au_pro_many(masks, maps, [float(k) for k in exp["mvtec_au_pro"]])
        for key, want in exp["mvtec_au_pro"].items():
            assert abs(got[float(key)] - want) <= 1e-6, (name, key, got[float(key)], want)
        assert abs(metrics.au_pro(masks, maps) - exp["mvtec_au_pro"]["0.3"]) <= 1e-6, name


def test_pro_curve_is_monotone_from_origin_to_one(cases):
    for name, masks, maps, _ in cases:
        fpr, pro = metrics.pro_curve(masks, maps)
        assert fpr[0] == 0.0 and pro[0] == 0.0 and fpr[-1] == 1.0 and abs(pro[-1] - 1.0) < 1e-9, name
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0), name


def test_official_curve_vertices_lie_on_toolkit_curve(cases, fixtures_dir):
    curves = np.load(fixtures_dir / "metrics" / "pro_curves.npz")
    for name, masks, maps, _ in cases:
        fpr, pro = metrics.pro_curve(masks, maps)
        off_fpr = curves[name + "__fpr"].astype(np.float64)
        off_pro = curves[name + "__pro"]
        # Official FPRs are float32: look each official point up on our curve at its FPR, allowing that rounding.
        lo = np.interp(off_fpr - 1e-7, fpr, pro, left=0.0)
        hi = np.interp(off_fpr + 1e-7, fpr, pro)
        assert np.all(off_pro >= lo - 1e-9) and np.all(off_pro <= hi + 1e-9), name


def test_auroc_ap_match_sklearn_and_official(cases):
    for name, masks, maps, exp in cases:
        assert abs(metrics.pixel_auroc(masks, maps) - exp["pixel_auroc"]) <= 1e-12, name
        assert abs(metrics.pixel_ap(masks, maps) - exp["pixel_ap"]) <= 1e-12, name
        labels, scores = np.array(exp["image_labels"]), np.array(exp["image_scores"])
        assert abs(metrics.image_auroc(labels, scores) - exp["image_auroc"]) <= 1e-12, name
        assert abs(metrics.image_ap(labels, scores) - exp["image_ap"]) <= 1e-12, name
        assert abs(metrics.image_auroc(labels, scores) - exp["mvtec_classification_au_roc"]) <= 1e-12, name
        np.testing.assert_array_equal(metrics.image_scores_max(maps), scores)


def test_glass_pro_matches_glass_repository(cases):
    for name, masks, maps, exp in cases:
        got = metrics.glass_pro(masks.astype(np.float64), maps)
        assert abs(got - exp["glass_compute_pro"]) <= 1e-9, (name, got, exp["glass_compute_pro"])
        assert abs(metrics.glass_pro(masks, maps) - exp["glass_compute_pro"]) <= 1e-9, name
        got2 = metrics.glass_pro(masks, maps, numpy_semantics=2)
        assert abs(got2 - exp["glass_compute_pro_numpy2"]) <= 1e-9, (name, got2)


def test_glass_pro_rows_match_reference_table(cases):
    for name, masks, maps, exp in cases:
        table = metrics.glass_pro_table(masks.astype(np.float64), maps)
        rows = exp["glass_rows"]
        assert table.threshold.size == exp["glass_num_thresholds"] == len(rows["threshold"]), name
        np.testing.assert_allclose(table.threshold, rows["threshold"], rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(table.pro, rows["pro"], rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(table.fpr, rows["fpr"], rtol=0, atol=1e-12, err_msg=name)
        assert int((table.fpr < 0.3).sum()) == exp["glass_num_thresholds_fpr_below_0.3"], name
        table2 = metrics.glass_pro_table(masks, maps, numpy_semantics=2)
        assert table2.threshold.size == exp["glass_num_thresholds_numpy2"], name


def test_evaluate_all_reproduces_every_fixture_value(cases):
    for name, masks, maps, exp in cases:
        got = metrics.evaluate_all(exp["image_labels"], exp["image_scores"], masks, maps)
        assert tuple(got) == metrics.KEYS
        for key in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap"):
            assert abs(got[key] - exp[key]) <= 1e-12, (name, key)
        assert abs(got["au_pro"] - exp["mvtec_au_pro"]["0.3"]) <= 1e-6, name
        assert abs(got["pixel_pro"] - exp["glass_compute_pro"]) <= 1e-9, name


@pytest.fixture(scope="module")
def loco(fixtures_dir):
    """The LOCO fixture read directly from its layout JSON (independent of the evaluator's reader)."""
    from PIL import Image
    import tifffile

    root = fixtures_dir / "metrics" / "loco"
    layout = json.loads((root / "loco_layout.json").read_text())
    config = {e["pixel_value"]: e for e in
              json.loads((root / "dataset" / "breakfast_box" / "defects_config.json").read_text())}
    maps, channels, types = [], [], []
    map_dir = root / "anomaly_maps" / "breakfast_box" / "test"
    for img in layout["images"]:
        maps.append(tifffile.imread(map_dir / img["type"] / f"{img['id']}.tiff"))
        chans = []
        for ch in img["channels"]:
            png = root / "dataset" / "breakfast_box" / "ground_truth" / img["type"] / img["id"] / ch["file"]
            mask = np.asarray(Image.open(png)) != 0
            entry = config[ch["pixel_value"]]
            chans.append((mask, saturation_area(int(mask.sum()), entry["saturation_threshold"],
                                                entry["relative_saturation"])))
        channels.append(chans)
        types.append(img["type"])
    expected = json.loads((root.parent / "loco_expected.json").read_text())
    return maps, channels, types, expected


def test_saturation_areas_match_official(loco):
    _, channels, _, expected = loco
    got = [sat for chans in channels for _, sat in chans]
    assert got == [c["saturation_area"] for c in expected["channels_saturation_area"]]


def test_au_spro_matches_exact_official_curve(loco):
    maps, channels, types, expected = loco
    got = metrics.loco_localization(maps, types, channels)
    for subset, values in expected["exact"]["auc_spro"].items():
        for key, want in values.items():
            assert abs(got[subset][key] - want) <= 1e-9, (subset, key)
    official = expected["official_v2"]["metrics_json"]["localization"]["auc_spro"]
    for subset, values in official.items():
        for key, want in values.items():  # the official adaptive thresholds approximate the exact curve
            assert abs(got[subset][key] - want) <= 6e-5, (subset, key)


def test_loco_image_auroc_matches_official(loco):
    maps, _, types, expected = loco
    got = metrics.loco_classification(types, metrics.image_scores_max(maps))
    for key, want in expected["official_v2"]["metrics_json"]["classification"]["auc_roc"].items():
        assert abs(got[key] - want) <= 1e-12, key
