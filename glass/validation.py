"""GLASS's validation anomalies: its own image-space synthesis (LAS: Perlin mask x DTD texture), on held-out images."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from datasets.image_io import read_rgb
from datasets.preprocess import Preprocessing
from datasets.samples import Sample

NAME = "LAS"


def anomaly_maker(model, held: Sequence[Sample] = ()):
    """The ``datasets.validation.AnomalyMaker`` of a ``GlassMethod``: the LAS of training (its texture folder and
    settings), with the sample's foreground mask when it has one."""
    from datasets.fg import load_fg_mask
    from datasets.synthesis import GlassSynthesizer

    pre = model.preprocessing(train=False)
    c = model.config
    synthesizer = GlassSynthesizer(model.augpath, pre, model.downsampling, c.mean, c.std, c.rand_aug)

    def make(sample: Sample, preprocessing: Preprocessing, rng: np.random.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
        image = preprocessing.image(read_rgb(sample.image_path))
        fg = load_fg_mask(sample.fg_mask_path, preprocessing) if sample.fg_mask_path else None
        out = synthesizer(image, fg, rng)
        return out["aug"], out["mask_l"]

    return make
