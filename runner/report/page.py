"""``<results_path>/report.html``: one plain HTML page, its images beside it under ``report_files/``.

Everything is read from what the run left on disk: ``results.csv`` (the metric table, verbatim), ``seed_*/results.csv``
(one table per seed and the mean ± std, when the folder holds a multi-seed run) and the per-class
``eval/<name>/report_data.npz`` (curves, scores, thumbnails, threshold, training history).
"""
from __future__ import annotations

import html
import math
import time
from pathlib import Path

import cv2
import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_text
from runner.results import read_results_csv
from runner.report import figures
from runner.report.class_data import FILE_NAME, read_class_data
from runner.report.gallery import order, outcome, tile

FILES = "report_files"
MAX_GALLERY = 60
COLUMNS = [("image_auroc", "i-AUROC"), ("pixel_auroc", "p-AUROC"), ("au_pro", "AU-PRO"),
           ("pixel_pro", "PRO (GLASS)"), ("image_ap", "i-AP"), ("pixel_ap", "p-AP"), ("best_epoch", "best epoch"),
           ("last_image_auroc", "last i-AUROC"), ("last_pixel_auroc", "last p-AUROC"), ("last_au_pro", "last AU-PRO"),
           ("last_epoch", "last epoch"), ("image_auroc_logical", "i-AUROC logical"),
           ("image_auroc_structural", "i-AUROC structural"), ("au_spro_mean", "AU-sPRO mean")]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1320px;padding:16px 24px;
color:#222;background:#fff;font-size:15px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.25em;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.6em}
h3{font-size:1.05em;margin:1em 0 .4em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.mean td{font-weight:600;background:#fafafa}
.meta{color:#666;font-size:.9em}.figs{display:flex;flex-wrap:wrap;gap:8px}.figs img{max-width:100%;height:auto}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:10px}
figure{margin:0;border:1px solid #ddd;padding:4px;border-radius:4px}figure img{width:100%;height:auto;
image-rendering:pixelated}figcaption{font-size:.82em;word-break:break-all}
.FP,.FN{border-color:#d33;background:#fff4f4}.tag{font-weight:700;padding:0 4px;border-radius:3px}
.tag.FP,.tag.FN{color:#fff;background:#d33}.tag.TP{color:#fff;background:#2a7}.tag.TN{color:#fff;background:#789}
.tag.yes{color:#fff;background:#d33}.tag.no{color:#fff;background:#2a7}
nav a{margin-right:12px}
"""


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{int(value)}" if key.endswith("epoch") else f"{100 * float(value):.2f}"


def _cell(key: str, value) -> str:
    raw = "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))
    return f'<td data-key="{key}" data-value="{raw}">{_fmt(key, value)}</td>'


def _image(path: Path, array_or_bytes) -> None:
    """PNG bytes as they are; an RGB array as PNG or (gallery photographs, a tenth of the size) JPEG by suffix."""
    data = array_or_bytes
    if isinstance(data, np.ndarray):
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix == ".jpg" else []
        ok, encoded = cv2.imencode(path.suffix, np.ascontiguousarray(data[..., ::-1]), params)
        if not ok:
            raise RuntimeError(f"cannot encode {path}")
        data = encoded.tobytes()
    atomic_write_bytes(path, data)


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _metric_table(rows: dict[str, dict], sizes: dict[str, str], table_id: str) -> str:
    shown = [(k, label) for k, label in COLUMNS
             if any(r.get(k) is not None and not (isinstance(r.get(k), float) and math.isnan(r[k]))
                    for r in rows.values())]
    head = "<tr><th>class</th><th>eval size</th>" + "".join(f"<th>{label}</th>" for _, label in shown) + "</tr>"
    lines = [f'<table id="{table_id}">', head]
    for name, row in rows.items():
        lines.append(f'<tr data-row="{html.escape(name)}"><td><a href="#{html.escape(name)}">{html.escape(name)}</a>'
                     f"</td><td>{sizes.get(name, '-')}</td>" + "".join(_cell(k, row.get(k)) for k, _ in shown)
                     + "</tr>")
    if len(rows) > 1:
        cells = []
        for key, _ in shown:
            values = [float(r[key]) for r in rows.values() if r.get(key) is not None and not math.isnan(r[key])]
            mean = float(np.mean(values)) if values else None
            cells.append("<td></td>" if key.endswith("epoch") else _cell(key, mean))
        lines.append('<tr class="mean" data-row="Mean"><td>Mean</td><td></td>' + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _seed_tables(results_path: Path, sizes: dict[str, str]) -> list[str]:
    seed_dirs = sorted(p.parent for p in results_path.glob("seed_*/results.csv"))
    if not seed_dirs:
        return []
    from runner.seeds import summarize

    out = ["<h2>Seeds</h2>"]
    for folder in seed_dirs:
        link = f'<a href="{html.escape(folder.name)}/report.html">its report</a>'
        out += [f"<h3>{html.escape(folder.name)} ({link})</h3>",
                _metric_table(read_results_csv(folder / "results.csv"), sizes, f"table-{folder.name}")]
    summary = summarize(seed_dirs)
    out.append(f"<h3>mean ± std over {len(seed_dirs)} seed runs</h3><table id=\"table-seeds\"><tr><th>class</th>"
               "<th>seeds</th><th>i-AUROC</th><th>p-AUROC</th><th>AU-PRO</th></tr>")
    for name, row in summary.items():
        cells = "".join(f"<td>{_fmt(k, row.get(k + '_mean'))} ± {_fmt(k, row.get(k + '_std'))}</td>"
                        for k in ("image_auroc", "pixel_auroc", "au_pro"))
        out.append(f"<tr><td>{html.escape(name)}</td><td>{int(row.get('seeds', 0))}</td>{cells}</tr>")
    out.append("</table>")
    return out


def _class_section(results_path: Path, name: str, data: dict, row: dict) -> list[str]:
    folder = results_path / FILES / name
    folder.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()

    def put(file: str, content) -> str:
        _image(folder / file, content)
        written.add(file)
        return f"{FILES}/{name}/{file}"

    threshold = data["threshold"]
    scores, labels = data["scores"], data["labels"]
    h, w = (int(v) for v in data["eval_size"])
    out = [f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>',
           f'<p class="meta">{len(scores)} test images ({int((labels == 1).sum())} anomalous) evaluated at {h}×{w} '
           f"px; threshold {'none stored' if threshold is None else f'{threshold:.6g}'}.</p>", '<div class="figs">']
    figs = []
    if "image_roc" in data or "pixel_roc" in data:
        figs.append(("ROC curves", put("roc.png", figures.roc_figure(data.get("image_roc"), data.get("pixel_roc"),
                                                                    row.get("image_auroc"), row.get("pixel_auroc")))))
    if "pro" in data:
        figs.append(("PRO curve", put("pro.png", figures.pro_figure(data["pro"], row.get("au_pro")))))
    figs.append(("score histogram", put("hist.png", figures.histogram_figure(scores, labels, threshold))))
    training = figures.training_figure(data["history"])
    if training is not None:
        figs.append(("training curves", put("training.png", training)))
    out += [f'<img src="{src}" alt="{alt}">' for alt, src in figs] + ["</div>"]

    ranked = order(labels, scores, threshold)
    kinds = [outcome(int(labels[i]), float(scores[i]), threshold) for i in range(len(scores))]
    errors = sum(k in ("FP", "FN") for k in kinds)
    shown = ranked[:max(MAX_GALLERY, errors)]
    out.append(f"<h3>Gallery: {kinds.count('FP')} false positive(s), {kinds.count('FN')} false negative(s) first, "
               f"then by score{'' if len(shown) == len(ranked) else f' (first {len(shown)} of {len(ranked)})'}"
               f"</h3><p class=\"meta\">image · ground truth · heat map · map ≥ threshold</p>")
    out.append('<div class="gallery">')
    value_range = tuple(float(v) for v in data["map_range"])
    for rank, i in enumerate(shown):
        src = put(f"g{rank:04d}.jpg", tile(data["thumbs"][i], data["masks"][i], data["maps"][i], value_range,
                                            threshold))
        out.append(f'<figure class="{kinds[i]}"><img src="{src}" alt="{html.escape(data["paths"][i])}" '
                   f'loading="lazy"><figcaption><span class="tag {kinds[i]}">{kinds[i]}</span> score '
                   f"{float(scores[i]):.4g} · {html.escape(data['kinds'][i])} · {html.escape(data['paths'][i])}"
                   "</figcaption></figure>")
    out.append("</div>")
    for stale in folder.iterdir():
        if stale.suffix in (".png", ".jpg") and stale.name not in written:
            stale.unlink(missing_ok=True)
    return out


def write_report(results_path: Path) -> Path:
    """Write ``<results_path>/report.html`` from results.csv and the per-class report data; returns its path."""
    results_path = Path(results_path)
    rows = read_results_csv(results_path / "results.csv")
    datas = {}
    for name in rows:
        path = results_path / "eval" / name / FILE_NAME
        if path.is_file():
            datas[name] = read_class_data(path)
    sizes = {name: "{}×{}".format(*(int(v) for v in d["eval_size"])) for name, d in datas.items()}
    body = ["<h1>Anomaly detection report</h1>",
            f'<p class="meta">{html.escape(str(results_path.resolve()))} · written '
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} · metrics in % from results.csv (best epoch; "
            "last epoch where recorded)</p>"]
    if datas:
        body.append("<nav>" + "".join(f'<a href="#{html.escape(n)}">{html.escape(n)}</a>' for n in datas) + "</nav>")
    body += ["<h2>Metrics</h2>", _metric_table(rows, sizes, "metrics") if rows else "<p>No results.csv rows.</p>"]
    body += _seed_tables(results_path, sizes)
    for name, data in datas.items():
        body += _class_section(results_path, name, data, rows[name])
    return atomic_write_text(results_path / "report.html", _page("Anomaly detection report", body))


def write_predict_report(output: Path, items: list[tuple[str, str, float, bool | None]],
                         threshold: float | None) -> Path:
    """``--test predict``: ``<output>/report.html``, the scored images by descending score with the decision.
    ``items``: (overlay PNG relative to ``output``, image path, score, decision)."""
    output = Path(output)
    ranked = sorted(items, key=lambda item: -item[2])
    flagged = sum(1 for item in items if item[3])
    body = ["<h1>Prediction report</h1>",
            f'<p class="meta">{len(items)} image(s) · threshold '
            f"{'none stored' if threshold is None else f'{threshold:.6g}'} · {flagged} flagged anomalous · written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
            '<p class="meta">image · heat map over the image</p><div class="gallery">']
    for overlay, image, score, decision in ranked:
        tag = "-" if decision is None else ("yes" if decision else "no")
        label = {"yes": "anomalous", "no": "good", "-": "no threshold"}[tag]
        body.append(f'<figure class="{"FP" if decision else ""}"><img src="{html.escape(overlay)}" '
                    f'alt="{html.escape(image)}" loading="lazy"><figcaption><span class="tag {tag}">{label}</span> '
                    f"score {score:.4g} · {html.escape(image)}</figcaption></figure>")
    body.append("</div>")
    return atomic_write_text(output / "report.html", _page("Prediction report", body))
