"""Anomaly-detection metrics: pure functions over arrays (numpy; optional torch device for the big sort).

Exact definitions (every distinct score is a threshold) equal to scikit-learn, the official MVTec AD and MVTec LOCO
evaluation code, and the GLASS repository; see docs/metrics.md.
"""
from ._checks import MetricInputError
from .glass_pro import glass_pro, glass_pro_table
from .loco import image_scores_max, loco_classification, loco_localization
from .pro import au_pro, au_pro_many, pro_curve
from .ranking import f1_max, image_ap, image_auroc, pixel_ap, pixel_auroc, pixel_f1_max
from .spro import LOCO_LIMITS, au_spro, saturation_area, spro_curve
from .summary import KEYS, evaluate_all

__all__ = [
    "KEYS", "LOCO_LIMITS", "MetricInputError", "au_pro", "au_pro_many", "au_spro", "evaluate_all", "f1_max",
    "glass_pro", "glass_pro_table", "image_ap", "image_auroc", "image_scores_max", "loco_classification",
    "loco_localization", "pixel_ap", "pixel_auroc", "pixel_f1_max", "pro_curve", "saturation_area", "spro_curve",
]
