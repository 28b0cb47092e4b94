"""SLSG's validation anomalies: its own simulator (texture blending and SCAR), on held-out images."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from datasets.image_io import read_rgb
from datasets.preprocess import Preprocessing
from datasets.samples import Sample

NAME = "SLSG simulator"


def anomaly_maker(model, held: Sequence[Sample] = ()):
    """The ``datasets.validation.AnomalyMaker`` of an ``SLSGMethod`` (SCAR sources: the held-out images)."""
    from slsg.simulate import SLSGSimulator

    pre = model.preprocessing(train=False)
    others = [pre.image_uint8(read_rgb(s.image_path)) for s in held]
    simulator = SLSGSimulator(model.cls_name, model._textures(), others,
                              beta_fix=bool(model.config.slsg_beta_fix))

    def make(sample: Sample, preprocessing: Preprocessing, rng: np.random.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
        simulated = simulator(preprocessing.image_uint8(read_rgb(sample.image_path)), rng)
        rgb = torch.from_numpy(simulated.aug).permute(2, 0, 1).to(torch.float32).div(255)
        mean = torch.tensor(preprocessing.mean).view(3, 1, 1)
        std = torch.tensor(preprocessing.std).view(3, 1, 1)
        return rgb.sub(mean).div(std), torch.from_numpy(simulated.mask)

    return make
