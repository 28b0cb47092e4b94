"""The one sort behind every exact curve: negative scores sorted once, positives grouped into tie runs.

Every exact metric here (ROC, PR, PRO, sPRO) is a curve with one vertex per distinct score t, whose coordinates are
``#negatives >= t`` and a cumulative weight of the positives ``>= t``. Negatives (normal pixels) are the vast
majority: they are only *counted*, so they need a plain value sort (no argsort, no weight gathers) and
``searchsorted``. Positives (anomalous pixels) are few: they are argsorted with their weights. Between two distinct
positive scores the curve only moves horizontally, so the vertices at positive scores (plus the corner before each)
give exactly the same piecewise-linear curve as one vertex per distinct score of all pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SortedNegatives:
    """Negative scores sorted ascending, on the CPU (numpy) or on a torch device.

    With ``top_only`` set, only the values above a cut are kept (enough for FPRs up to a limit): counts are exact for
    thresholds ``>= cut`` and reported as ``total`` (FPR 1) below it.
    """

    values: object  # np.ndarray or torch.Tensor, ascending
    total: int
    cut: float | None = None
    ties_at_cut: int = 0

    @classmethod
    def build(cls, negatives: np.ndarray, device=None, fpr_limit: float | None = None,
              scratch: bool = False) -> "SortedNegatives":
        """Sort ``negatives`` (1-D, float). ``fpr_limit`` < 1 keeps only the top ``floor(limit·n) + 1`` values.

        ``scratch``: the caller's array is a temporary that may be sorted in place (saves one copy).
        """
        n = int(negatives.size)
        keep = n if fpr_limit is None or fpr_limit >= 1.0 else int(np.floor(fpr_limit * n)) + 1
        if device is not None:
            return cls._build_torch(negatives, device, keep)
        part = negatives if scratch else negatives.copy()
        if keep >= n:
            part.sort()
            return cls(part, n)
        part.partition(n - keep)
        cut = part[n - keep]
        top = part[n - keep + 1:]
        top = np.sort(top[top > cut])
        return cls(top, n, float(cut), int(np.count_nonzero(part == cut)))

    @classmethod
    def _build_torch(cls, negatives: np.ndarray, device, keep: int) -> "SortedNegatives":
        import torch

        values = torch.from_numpy(np.ascontiguousarray(negatives)).to(device)
        n = values.numel()
        if keep >= n:
            return cls(torch.sort(values).values, n)
        top = torch.topk(values, keep, largest=True, sorted=False).values
        cut = top.min()
        top = torch.sort(top[top > cut]).values
        return cls(top, n, float(cut.item()), int((values == cut).sum().item()))

    def counts(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(#neg >= t, #neg > t)`` for each threshold, int64 arrays."""
        if isinstance(self.values, np.ndarray):
            thr = thresholds.astype(self.values.dtype, copy=False)
            below = np.searchsorted(self.values, thr, side="left")
            at_most = np.searchsorted(self.values, thr, side="right")
        else:
            import torch

            thr = torch.from_numpy(np.ascontiguousarray(thresholds)).to(self.values.device, self.values.dtype)
            below = torch.searchsorted(self.values, thr, right=False).cpu().numpy()
            at_most = torch.searchsorted(self.values, thr, right=True).cpu().numpy()
        kept = len(self.values)
        ge = (kept - below).astype(np.int64)
        gt = (kept - at_most).astype(np.int64)
        if self.cut is not None:
            at_cut = thresholds == self.cut
            ge[at_cut] = gt[at_cut] + self.ties_at_cut
            beyond = thresholds < self.cut
            ge[beyond] = self.total
            gt[beyond] = self.total
        return ge, gt


@dataclass
class PositiveRuns:
    """Positive scores grouped into runs of equal value, descending.

    ``values`` (m,) distinct scores, ``counts`` (m,) positives per run, ``cum_weight`` (m,) cumulative weight of the
    positives with score ``>= values[j]`` (float64, summed in descending score order).
    """

    values: np.ndarray
    counts: np.ndarray
    cum_weight: np.ndarray

    @classmethod
    def build(cls, scores: np.ndarray, weights: np.ndarray | None = None) -> "PositiveRuns":
        order = np.argsort(scores)[::-1]
        s = scores[order]
        last = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if s.size else np.zeros(0, np.int64)
        counts = np.diff(np.r_[-1, last])
        if weights is None:
            cum = np.cumsum(counts).astype(np.float64)
        else:
            cum = np.cumsum(weights[order].astype(np.float64))[last]
        return cls(s[last], counts.astype(np.int64), cum)


def step_curve(neg: SortedNegatives, pos: PositiveRuns) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the exact curve (x = #negatives at or above, y = cumulative positive weight), x non-decreasing.

    Shape (2m + 2,): (0, 0); for each distinct positive score t_j the corner (#neg > t_j, W_{j-1}) and the vertex
    (#neg >= t_j, W_j); finally (#neg, W_m).
    """
    m = pos.values.size
    ge, gt = neg.counts(pos.values)
    x = np.empty(2 * m + 2, np.float64)
    y = np.empty(2 * m + 2, np.float64)
    x[0], y[0] = 0.0, 0.0
    x[1:-1:2], x[2:-1:2] = gt, ge
    y[1:-1:2] = np.r_[0.0, pos.cum_weight[:-1]]
    y[2:-1:2] = pos.cum_weight
    x[-1] = neg.total
    y[-1] = pos.cum_weight[-1] if m else 0.0
    return x, y


def area_to_limit(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoidal area under y(x) for x in [0, limit], divided by ``limit``.

    ``x`` ascending from 0. If ``limit`` is not an abscissa, y is linearly interpolated between the last point with
    x <= limit and the first with x > limit (the MVTec ``trapezoid(..., x_max)`` rule); points at x == limit count.
    """
    k = int(np.searchsorted(x, limit, side="right"))
    xs, ys = x[:k], y[:k]
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1])))
    if xs[-1] < limit and k < x.size:
        t = (limit - x[k - 1]) / (x[k] - x[k - 1])
        y_at = y[k - 1] + t * (y[k] - y[k - 1])
        area += 0.5 * (y_at + y[k - 1]) * (limit - x[k - 1])
    return area / limit
