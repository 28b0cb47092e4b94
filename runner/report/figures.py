"""The report's static figures (matplotlib, Agg backend), each returned as PNG bytes."""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

SIZE = (4.2, 3.2)
DPI = 100
PRO_LIMIT = 0.3


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def roc_figure(image_roc: np.ndarray | None, pixel_roc: np.ndarray | None, image_auroc: float | None,
               pixel_auroc: float | None) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    if image_roc is not None:
        ax.plot(image_roc[0], image_roc[1], label=f"image  AUROC {_pct(image_auroc)}", color="tab:blue")
    if pixel_roc is not None:
        ax.plot(pixel_roc[0], pixel_roc[1], label=f"pixel  AUROC {_pct(pixel_auroc)}", color="tab:orange")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def pro_figure(pro: np.ndarray, au_pro: float | None) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(pro[0], pro[1], color="tab:green", label=f"AU-PRO@{PRO_LIMIT} {_pct(au_pro)}")
    ax.axvspan(0, PRO_LIMIT, color="tab:green", alpha=0.08)
    ax.axvline(PRO_LIMIT, color="0.6", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate (pixels)", ylabel="per-region overlap", title="PRO", xlim=(0, 1),
           ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def histogram_figure(scores: np.ndarray, labels: np.ndarray, threshold: float | None) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    bins = np.histogram_bin_edges(scores, bins=min(30, max(5, len(scores) // 3)))
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, color="tab:green", label=f"good ({int((labels == 0).sum())})")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, color="tab:red",
            label=f"anomalous ({int((labels == 1).sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"threshold {threshold:.4g}")
    ax.set(xlabel="image score", ylabel="test images", title="Scores")
    ax.legend(fontsize=8)
    return _png(fig)


def training_figure(history: list[dict]) -> bytes | None:
    """Per-epoch history: losses / radii on the left, evaluation AUROCs on the right."""
    if not history:
        return None
    epochs = np.asarray([h.get("epoch", i) for i, h in enumerate(history)], float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * SIZE[0], SIZE[1]))

    def series(key: str) -> np.ndarray:
        return np.asarray([h.get(key, np.nan) if h.get(key) is not None else np.nan for h in history], float)

    for key in ("loss", "r_t", "r_g", "r_f"):
        values = series(key)
        if np.isfinite(values).any():
            left.plot(epochs, values, marker=".", label=key)
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set(xlabel="epoch (SLSG: step)", title="training")
    left.legend(fontsize=8)
    drawn = False
    for key, label in (("image_auroc", "i-AUROC"), ("pixel_auroc", "p-AUROC")):
        values = series(key)
        if np.isfinite(values).any():
            right.plot(epochs, 100 * values, marker=".", label=label)
            drawn = True
    right.set(xlabel="epoch (SLSG: step)", ylabel="%", title="evaluation during training")
    if drawn:
        right.legend(fontsize=8)
    return _png(fig)
