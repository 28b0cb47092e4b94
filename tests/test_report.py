"""report.html after a run, after ``--test test`` and after ``--test predict``: its numbers are results.csv's, every
image it references exists, its curves are the metrics' curves, its galleries put the errors first; and it renders in
headless Chromium without console errors (skipped when Chromium is not installed)."""
from __future__ import annotations

import csv
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

import main
from cli_helpers import tiny_demo, tiny_glass_flags
from runner.results import read_results_csv, write_results_csv
from runner.report import read_class_data, write_report
from runner.report.gallery import order, outcome

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """The parts of report.html a test checks: metric cells, image sources, gallery figure classes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: dict[str, dict[str, dict[str, str]]] = {}  # table id -> row -> key -> raw value
        self.images: list[str] = []
        self.figures: list[str] = []
        self._table, self._row = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.cells.setdefault(self._table, {})
        elif tag == "tr":
            self._row = a.get("data-row")
        elif tag == "td" and "data-key" in a and self._row is not None:
            self.cells[self._table].setdefault(self._row, {})[a["data-key"]] = a["data-value"]
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "figure":
            self.figures.append(a.get("class", ""))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    demo = tiny_demo(root / "demo", classes=("brick", "coins"))
    results = root / "results"
    assert main.main(tiny_glass_flags(demo, results, epochs=2)) == 0
    return demo, results


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row.pop("Row Names"): row for row in csv.DictReader(handle)}


def test_numbers_equal_results_csv(run):
    _, results = run
    page = Page((results / "report.html").read_text())
    written = _csv_rows(results / "results.csv")
    table = page.cells["metrics"]
    assert set(table) == set(written)
    for name, cells in table.items():
        assert cells, name
        for key, raw in cells.items():
            if raw == "":
                assert written[name][key] == "", (name, key)
            else:
                assert float(raw) == float(written[name][key]), (name, key)
    assert {"image_auroc", "pixel_auroc", "au_pro", "last_image_auroc", "best_epoch"} <= set(table["mvtec_brick"])


def test_curves_and_scores_are_those_of_the_evaluation(run):
    from sklearn.metrics import roc_auc_score

    _, results = run
    rows = read_results_csv(results / "results.csv")
    for name, row in rows.items():
        data = read_class_data(results / "eval" / name / "report_data.npz")
        assert roc_auc_score(data["labels"], data["scores"]) == pytest.approx(row["image_auroc"], abs=1e-12)
        fpr, tpr = data["image_roc"]
        assert np.trapezoid(tpr, fpr) == pytest.approx(row["image_auroc"], abs=1e-12)
        fpr, tpr = data["pixel_roc"]  # decimated for drawing: its area is close, not equal
        assert np.trapezoid(tpr, fpr) == pytest.approx(row["pixel_auroc"], abs=5e-3)
        fpr, pro = data["pro"]
        inside = fpr <= 0.3
        x = np.r_[fpr[inside], 0.3]
        y = np.r_[pro[inside], np.interp(0.3, fpr, pro)]
        assert np.trapezoid(y, x) / 0.3 == pytest.approx(row["au_pro"], abs=5e-3)
        assert tuple(data["eval_size"]) == (64, 64) and data["thumbs"].shape[0] == len(data["scores"])
        assert data["history"] and [h["epoch"] for h in data["history"]] == [0, 1]
        assert data["threshold"] is not None


def test_every_referenced_image_exists_and_galleries_put_errors_first(run):
    _, results = run
    page = Page((results / "report.html").read_text())
    assert page.images
    for src in page.images:
        assert not src.startswith(("http:", "https:", "//")), src
        image = cv2.imread(str(results / src))
        assert image is not None and image.size > 0, src
    total = 0
    for name in ("mvtec_brick", "mvtec_coins"):
        data = read_class_data(results / "eval" / name / "report_data.npz")
        kinds = [outcome(int(label), float(score), data["threshold"])
                 for label, score in zip(data["labels"], data["scores"])]
        ranked = [kinds[i] for i in order(data["labels"], data["scores"], data["threshold"])]
        errors = sum(k in ("FP", "FN") for k in kinds)
        assert all(k in ("FP", "FN") for k in ranked[:errors])
        total += len(kinds)
    assert len(page.figures) == total
    for name in ("mvtec_brick", "mvtec_coins"):
        for file in ("roc.png", "pro.png", "hist.png", "training.png"):
            assert f"report_files/{name}/{file}" in page.images


def test_order_and_outcome():
    labels = np.array([0, 0, 1, 1, 0])
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.3])
    assert [outcome(int(a), float(b), 0.5) for a, b in zip(labels, scores)] == ["FP", "TN", "FN", "TP", "TN"]
    assert order(labels, scores, 0.5) == [0, 2, 3, 4, 1]
    assert order(labels, scores, None) == [0, 3, 4, 2, 1]


def test_test_mode_and_predict_write_reports(run, tmp_path):
    demo, results = run
    report = results / "report.html"
    report.unlink()
    flags = tiny_glass_flags(demo, results, epochs=2)
    assert main.main(flags + ["--test", "test"]) == 0
    page = Page(report.read_text())
    assert "report_files/mvtec_brick/training.png" in page.images  # the training history survives re-evaluation

    output = tmp_path / "pred"
    ckpt = results / "models" / "backbone_0" / "mvtec_brick"
    assert main.main(["--test", "predict", "--checkpoint", str(ckpt), "--input",
                      str(demo.datapath / "brick" / "test"), "--output", str(output), "--gpu", "-1"]) == 0
    page = Page((output / "report.html").read_text())
    with open(output / "predictions.csv", newline="") as handle:
        predicted = list(csv.DictReader(handle))
    assert len(page.images) == len(predicted)
    for src in page.images:
        assert (output / src).is_file(), src
    expected = sorted(predicted, key=lambda r: -float(r["score"]))
    text = (output / "report.html").read_text()
    positions = [text.index(f"score {float(r['score']):.4g} · {r['image']}") for r in expected]
    assert positions == sorted(positions)


def test_seed_tables(tmp_path):
    for seed, value in ((0, 0.8), (1, 0.9)):
        write_results_csv(tmp_path / f"seed_{seed}" / "results.csv",
                          {"mvtec_a": {"image_auroc": value, "pixel_auroc": 0.5, "best_epoch": 1}})
    page = Page(write_report(tmp_path).read_text())
    assert page.cells["table-seed_0"]["mvtec_a"]["image_auroc"] == repr(0.8)
    assert page.cells["table-seed_1"]["mvtec_a"]["image_auroc"] == repr(0.9)
    assert "85.00 ± 7.07" in (tmp_path / "report.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_renders_in_headless_chromium(run, tmp_path):
    _, results = run
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1366,900", f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
         (results / "report.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (900, 1366)
    non_white = (image < 235).any(axis=2).mean()
    assert non_white > 0.05, non_white  # text, table and figures drawn, not a blank page
