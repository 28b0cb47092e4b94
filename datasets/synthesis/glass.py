"""GLASS Local Anomaly Synthesis (LAS) for one training sample (glass.md §3.1)."""
from __future__ import annotations

import os

import numpy as np
import torch

from common.errors import UserError
from datasets.synthesis.blend import blend, sample_beta
from datasets.synthesis.perlin import check_sizes, perlin_mask
from datasets.synthesis.textures import TexturePool, texture_transform


class GlassSynthesizer:
    """Builds the textured copy ``aug`` of a normalised training image and its Perlin masks.

    augpath: DTD-style texture folder (``--augpath``); preprocessing: the train ``Preprocessing`` (its ``resize``,
    ``imagesize``, ``mean``, ``std``, and ``image(pil)`` for ``rand_aug=0``); downsampling: image/patch-grid ratio
    (``--downsampling``, 8); mean, std: the transparency distribution (``--mean``, ``--std``), not the
    normalisation; rand_aug: ``--rand_aug``; reference_glob: DTD ``*/*.jpg`` glob (False: any image extension).
    """

    def __init__(self, augpath: str | os.PathLike, preprocessing, downsampling: int = 8, mean: float = 0.5,
                 std: float = 0.1, rand_aug: bool | int = True, reference_glob: bool = True):
        if int(downsampling) <= 0:
            raise UserError(f"--downsampling must be positive, got {downsampling}")
        imagesize = preprocessing.imagesize
        side = imagesize if isinstance(imagesize, int) else imagesize[0]
        if side % int(downsampling):
            raise UserError(f"--imagesize {side} is not a multiple of --downsampling {downsampling}")
        self.feat_size = side // int(downsampling)
        check_sizes((side, side), self.feat_size)
        if std < 0:
            raise UserError(f"--std must be >= 0, got {std}")
        self.pool = TexturePool(augpath, reference_glob=reference_glob)
        self.preprocessing = preprocessing
        self.downsampling = int(downsampling)
        self.mean, self.std = float(mean), float(std)
        self.rand_aug = bool(rand_aug)

    def texture(self, rng: np.random.Generator) -> torch.Tensor:
        """One normalised texture, float32 Tensor[3, H, W]."""
        pil = self.pool.sample(rng)
        if not self.rand_aug:
            return self.preprocessing.image(pil)
        p = self.preprocessing
        return texture_transform(pil, p.resize, p.imagesize, p.mean, p.std, rng)

    def __call__(self, image: torch.Tensor, fg_mask: torch.Tensor | None,
                 rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """image: normalised Tensor[3, H, W]; fg_mask: Tensor[1, H, W] ({0,1}) or None.

        Returns ``aug`` Tensor[3, H, W], ``mask_s`` float32 Tensor[h, w] (h = H / downsampling) and ``mask_l``
        float32 Tensor[H, W]. Draw order: texture file, texture ops, Perlin mask, beta.
        """
        texture = self.texture(rng).to(image.dtype)
        if texture.shape != image.shape:
            raise ValueError(f"texture shape {tuple(texture.shape)} differs from image shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if h % self.downsampling or w % self.downsampling:
            raise UserError(f"--imagesize {h}x{w} is not a multiple of --downsampling {self.downsampling}")
        mask_s, mask_l = perlin_mask((h, w), (h // self.downsampling, w // self.downsampling), rng, fg=fg_mask)
        beta = sample_beta(rng, self.mean, self.std)
        mask_l_t = torch.from_numpy(mask_l)
        aug = blend(image, texture, mask_l_t.to(image.dtype), beta)
        return {"aug": aug, "mask_s": torch.from_numpy(mask_s), "mask_l": mask_l_t}
