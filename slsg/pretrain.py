"""SLSG generative pre-training of the encoder — a TOOLKIT RECONSTRUCTION of the paper's description, not reference
code (the public code only loads ``pre_models/<class>.pth`` if it exists). See docs/slsg.md, "Pre-training".

The encoder (run on SLSG's path: conv1 -> s0; layer1 on raw conv1; layer2-4) is trained on the class's normal
training images with
  A. masked-region inpainting through a light U-Net generator (discarded afterwards):
     ``L_rec = MSE(x^, x) + 2 MSE_M(x^, x) + (1 - SSIM(x^, x))`` (SSIM on de-normalised images, Gaussian 11 / 1.5);
     the mask mixes grid blocks (ratio U(0.25, 0.5) of an 8x8 grid) and, with p = 0.5, a Perlin region;
  B. position reasoning: the image cut into a g x g grid with k ~ U{2..g^2} cells permuted; layer4 average-pooled
     to g x g cell embeddings; a linear head predicts every cell's original index (cross-entropy).
``L = L_rec + lambda_pos * L_pos``; Adam (encoder lr, generator/head 10x lr) with one cosine decay. The result is
written as a complete torchvision resnet18 state dict, the format the main stage loads.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.atomic import atomic_torch_save
from common.errors import UserError
from datasets.synthesis.perlin import perlin_threshold_map
from slsg import imageops
from slsg.batches import to_tensor
from slsg.decoder import conv_bn_relu
from slsg.encoder import EncoderSegment
from slsg.preprocessing import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class PretrainConfig:
    steps: int = 3000
    lr: float = 1e-4
    batch_size: int = 8
    lambda_pos: float = 0.1
    grid: int = 4
    position: bool = True
    seed: int = 0
    block_grid: int = 8
    mask_ratio: tuple[float, float] = (0.25, 0.5)


def pretrain_path(checkpoint: Path) -> Path:
    """``<results>/models/slsg/<dataset>_<class>.tch`` -> ``.../slsg/pre_models/<dataset>_<class>.pth``."""
    return checkpoint.parent / "pre_models" / f"{checkpoint.stem}.pth"


class Generator(nn.Module):
    """U-Net from the SLSG encoder outputs (s0, l1, l2, l3, l4) back to a (B,3,S,S) normalised image."""

    def __init__(self) -> None:
        super().__init__()
        self.b3 = nn.Sequential(*conv_bn_relu(512 + 256, 256), *conv_bn_relu(256, 256))
        self.b2 = nn.Sequential(*conv_bn_relu(256 + 128, 128), *conv_bn_relu(128, 128))
        self.b1 = nn.Sequential(*conv_bn_relu(128 + 64 + 64, 64), *conv_bn_relu(64, 64))
        self.out = nn.Sequential(*conv_bn_relu(64, 32), nn.Conv2d(32, 3, 3, padding=1))

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        s0, l1, l2, l3, l4 = feats
        x = self.b3(torch.cat([self._up(l4), l3], 1))
        x = self.b2(torch.cat([self._up(x), l2], 1))
        x = self.b1(torch.cat([self._up(x), l1, s0], 1))
        return self.out(self._up(x))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of (B,C,H,W) images in [0, 1] with a Gaussian window (valid convolution)."""
    coords = torch.arange(window, dtype=a.dtype, device=a.device) - (window - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(a.shape[1], 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=a.shape[1])

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return value.mean()


def inpaint_mask(size: int, rng: np.random.Generator, config: PretrainConfig) -> np.ndarray:
    """float32 (S,S) {0,1}: random blocks of a ``block_grid`` grid (ratio U(lo, hi)) united, with p = 0.5, with a
    Perlin region from the SLSG texture-branch generator."""
    n = config.block_grid
    ratio = rng.uniform(*config.mask_ratio)
    blocks = np.zeros(n * n, np.float32)
    blocks[rng.choice(n * n, max(1, round(ratio * n * n)), replace=False)] = 1
    mask = np.kron(blocks.reshape(n, n), np.ones((size // n, size // n), np.float32))
    if rng.random() < 0.5:
        mask = np.maximum(mask, perlin_threshold_map((size, size), rng, 0, 4, 0.5, 90.0))
    return mask


def shuffle_cells(img: np.ndarray, grid: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Permute k ~ U{2..grid^2} of the grid cells. Returns (image, labels (grid^2,)): labels[c] = the original index
    of the content now at cell c (raster order)."""
    size = img.shape[0]
    cell = size // grid
    n = grid * grid
    k = int(rng.integers(2, n + 1))
    chosen = rng.choice(n, k, replace=False)
    labels = np.arange(n)
    labels[chosen] = chosen[rng.permutation(k)]
    out = np.empty_like(img)
    for c in range(n):
        sr, sc = divmod(int(labels[c]), grid)
        r, col = divmod(c, grid)
        out[r * cell:(r + 1) * cell, col * cell:(col + 1) * cell] = img[sr * cell:(sr + 1) * cell,
                                                                        sc * cell:(sc + 1) * cell]
    return out, labels


def pretrain_batch(images: Sequence[np.ndarray], config: PretrainConfig, step: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (clean (B,3,S,S), masked (B,3,S,S), mask (B,1,S,S), shuffled (B,3,S,S), labels (B,g^2))."""
    rng = np.random.default_rng([config.seed, 7919, step])
    idx = rng.choice(len(images), config.batch_size, replace=len(images) < config.batch_size)
    clean, masks, shuffled, labels = [], [], [], []
    for i in idx:
        img = imageops.color_jitter(images[int(i)], rng, 0.1, 0.1)
        clean.append(img)
        masks.append(inpaint_mask(img.shape[0], rng, config))
        view, lab = shuffle_cells(img, config.grid, rng)
        shuffled.append(view)
        labels.append(lab)
    x = to_tensor(clean)
    m = torch.from_numpy(np.stack(masks))[:, None]
    return x, x * (1 - m), m, to_tensor(shuffled), torch.from_numpy(np.stack(labels)).long()


def _denorm(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``MSE + 2 MSE over the masked pixels + (1 - SSIM)``; pred/target (B,3,S,S) normalised, mask (B,1,S,S)."""
    err = (pred - target) ** 2
    masked = (err * mask).sum() / (mask.sum() * 3).clamp_min(1.0)
    return err.mean() + 2 * masked + (1 - ssim(_denorm(pred), _denorm(target)))


def pretrain_encoder(encoder: EncoderSegment, images: Sequence[np.ndarray], config: PretrainConfig,
                     device: torch.device, out_path: Path, start: str = "random",
                     log: Callable[[str], None] = print) -> dict:
    """Pre-train ``encoder`` in place and write it to ``out_path`` (torchvision resnet18 state dict, atomically).

    images: uint8 RGB (S,S,3) normal training images. Returns {"losses_rec", "losses_pos", "position_accuracy"}.
    """
    if config.steps < 1:
        raise UserError(f"--pretrain_steps must be at least 1, got {config.steps}")
    size = images[0].shape[0]
    if config.grid < 2 or size % config.grid:
        raise UserError(f"--pretrain_grid {config.grid} does not divide --imagesize {size}")
    torch.manual_seed(config.seed)
    encoder.to(device).requires_grad_(True)
    generator = Generator().to(device)
    head = nn.Linear(512, config.grid * config.grid).to(device)
    optimizer = torch.optim.Adam([{"params": encoder.parameters(), "lr": config.lr},
                                  {"params": list(generator.parameters()) + list(head.parameters()),
                                   "lr": 10 * config.lr}])
    base = [g["lr"] for g in optimizer.param_groups]
    encoder.train()
    generator.train()
    rec_hist, pos_hist, acc_hist = [], [], []
    t0 = time.time()
    for step in range(config.steps):
        scale = 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * scale
        clean, masked, mask, shuffled, labels = (t.to(device) for t in pretrain_batch(images, config, step))
        loss_rec = reconstruction_loss(generator(encoder(masked)), clean, mask)
        loss = loss_rec
        if config.position:
            l4 = encoder(shuffled)[-1]
            cells = F.adaptive_avg_pool2d(l4, config.grid).flatten(2).transpose(1, 2)  # (B, g^2, 512)
            logits = head(cells)
            loss_pos = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
            loss = loss + config.lambda_pos * loss_pos
            pos_hist.append(float(loss_pos.detach()))
            acc_hist.append(float((logits.argmax(-1) == labels).float().mean()))
        if not math.isfinite(float(loss.detach())):
            raise UserError(f"slsg pre-training: the loss became {float(loss)} at step {step} "
                            f"(try a lower --pretrain_lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rec_hist.append(float(loss_rec.detach()))
        if (step + 1) % 10 == 0 or step + 1 == config.steps:
            msg = f"slsg pre-training: step {step + 1}/{config.steps} rec {np.mean(rec_hist[-10:]):.4f}"
            if pos_hist:
                msg += f" pos {np.mean(pos_hist[-10:]):.3f} acc {np.mean(acc_hist[-10:]):.2f}"
            log(msg + f" ({(time.time() - t0) / (step + 1):.2f} s/step)")
    encoder.requires_grad_(False)
    encoder.eval()
    state = {k: v.detach().cpu() for k, v in encoder.resnet18.state_dict().items()}
    atomic_torch_save(state, out_path)
    log(f"slsg pre-training: encoder written to {out_path} (initialised from {start})")
    return {"losses_rec": rec_hist, "losses_pos": pos_hist, "position_accuracy": acc_hist}
