"""Mean ± std over seeds from the per-seed results.csv files."""
from __future__ import annotations

import numpy as np
import pytest

from runner.results import write_results_csv
from runner.seeds import main, summarize


def test_summary_mean_and_std(tmp_path):
    values = [0.9, 0.8, 1.0]
    runs = []
    for seed, v in enumerate(values):
        run = tmp_path / f"seed_{seed}"
        write_results_csv(run / "results.csv", {"mvtec_a": {"image_auroc": v, "au_pro": 0.5, "best_epoch": seed}})
        runs.append(run)
    summary = summarize(runs)
    assert summary["mvtec_a"]["image_auroc_mean"] == pytest.approx(np.mean(values))
    assert summary["mvtec_a"]["image_auroc_std"] == pytest.approx(np.std(values, ddof=1))
    assert summary["mvtec_a"]["au_pro_std"] == 0.0 and summary["mvtec_a"]["seeds"] == 3
    assert main([str(r) for r in runs] + ["--out", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().startswith("class,")
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "t.csv")]) == 2
