"""Transparency draw and the LAS blend (glass.md §3.1)."""
from __future__ import annotations

import numpy as np

BETA_MIN, BETA_MAX = 0.2, 0.8


def sample_beta(rng: np.random.Generator, mean: float = 0.5, std: float = 0.1, low: float = BETA_MIN,
                high: float = BETA_MAX) -> float:
    """beta ~ Normal(mean, std) clipped to [low, high] (GLASS --mean/--std; clip [0.2, 0.8])."""
    return float(np.clip(rng.normal(mean, std), low, high))


def _expand_mask(mask, image):
    """Make a 2-D (H, W) mask broadcast against a (C, H, W) or (H, W, C) image."""
    if mask.ndim != 2 or image.ndim != 3:
        return mask
    if tuple(image.shape[1:]) == tuple(mask.shape):
        return mask[None]
    if tuple(image.shape[:2]) == tuple(mask.shape):
        return mask[..., None]
    raise ValueError(f"mask shape {tuple(mask.shape)} does not match image shape {tuple(image.shape)}")


def blend(image, texture, mask_l, beta: float):
    """aug = image*(1-m) + (1-beta)*texture*m + beta*image*m.

    image, texture: (C, H, W) or (H, W, C), numpy arrays or torch tensors of the same kind; mask_l: (H, W) or
    broadcastable, values in [0, 1]. The weights sum to 1, so blending normalised images equals blending pixels
    and normalising afterwards.
    """
    m = _expand_mask(mask_l, image)
    if hasattr(image, "dtype") and hasattr(m, "to") and hasattr(image, "device"):
        m = m.to(dtype=image.dtype, device=image.device)
    return image * (1 - m) + (1 - beta) * texture * m + beta * image * m
