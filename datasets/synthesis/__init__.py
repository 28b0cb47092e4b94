"""Image-space anomaly synthesis shared by GLASS and SLSG: Perlin masks, DTD textures, blending.

Names are imported lazily so that numpy-only users (``perlin``, ``blend``) do not pay for importing torch.
"""
from __future__ import annotations

import importlib

# Eager: binds the function ``blend`` over the submodule of the same name.
from datasets.synthesis.blend import blend, sample_beta

_EXPORTS = {
    "blend": "blend", "sample_beta": "blend",
    "GlassSynthesizer": "glass",
    "check_sizes": "perlin", "combine_maps": "perlin", "perlin_mask": "perlin", "perlin_noise": "perlin",
    "perlin_threshold_map": "perlin", "rand_perlin_2d": "perlin", "rotate_noise": "perlin",
    "TexturePool": "textures", "apply_op": "textures", "draw_ops": "textures", "texture_transform": "textures",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
