"""All metrics of one evaluation from one sort of the normal pixels (what the runner calls every evaluation)."""
from __future__ import annotations

from ._checks import MetricInputError, all_finite, as_binary, as_scores, check_stack, check_vector, undefined
from ._sorted import PositiveRuns, SortedNegatives, area_to_limit
from .glass_pro import glass_pro
from .pro import curve_from_regions
from .ranking import ap_from, auroc_from, image_ap, image_auroc
from .regions import label_regions

KEYS = ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pixel_pro", "au_pro")


def evaluate_all(labels, scores, masks, maps, device=None, integration_limit: float = 0.3) -> dict[str, float]:
    """{image_auroc, image_ap, pixel_auroc, pixel_ap, pixel_pro, au_pro} as floats (NaN + warning if undefined).

    labels (N,) {0, 1}; scores (N,) image scores; masks (N, H, W) binary; maps (N, H, W) float32.
    ``pixel_pro`` is the GLASS-repo PRO (reproduction of the GLASS tables), ``au_pro`` the exact MVTec AU-PRO at
    ``integration_limit``. ``device``: a torch device for the pixel sort (e.g. "cuda").
    """
    labels, scores = as_binary(labels, "labels"), as_scores(scores, "scores")
    check_vector(labels, scores)
    masks, maps = as_binary(masks, "masks"), as_scores(maps, "maps")
    check_stack(masks, maps)
    if labels.size != masks.shape[0]:
        raise MetricInputError(f"{labels.size} image labels but {masks.shape[0]} masks")
    out = {"image_auroc": image_auroc(labels, scores), "image_ap": image_ap(labels, scores)}
    nan = float("nan")
    if not masks.any() or masks.all():
        undefined("pixel metrics need both normal and anomalous pixels")
        return {**out, "pixel_auroc": nan, "pixel_ap": nan, "pixel_pro": nan, "au_pro": nan}
    if not all_finite(maps):
        undefined("anomaly maps contain NaN or inf")
        return {**out, "pixel_auroc": nan, "pixel_ap": nan, "pixel_pro": nan, "au_pro": nan}
    negatives = SortedNegatives.build(maps[~masks], device, scratch=True)
    positives = PositiveRuns.build(maps[masks])
    out["pixel_auroc"] = auroc_from(negatives, positives)
    out["pixel_ap"] = ap_from(negatives, positives)
    out["pixel_pro"] = glass_pro(masks, maps, negatives=negatives)
    curve = curve_from_regions(masks, maps, label_regions(masks), device, None, negatives)
    out["au_pro"] = area_to_limit(*curve, integration_limit) if curve is not None else nan
    return {key: float(out[key]) for key in KEYS}
