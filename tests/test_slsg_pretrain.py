"""SLSG generative pre-training (toolkit reconstruction): the views it trains on, and a tiny smoke + effect run."""
from __future__ import annotations

import numpy as np
import torch

from slsg.encoder import EncoderSegment, init_encoder
from slsg.pretrain import PretrainConfig, inpaint_mask, pretrain_encoder, reconstruction_loss, shuffle_cells, ssim


def test_shuffled_cells_are_undone_by_their_labels():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    view, labels = shuffle_cells(img, 4, rng)
    assert sorted(labels.tolist()) == list(range(16)) and (labels != np.arange(16)).sum() >= 2
    restored = np.empty_like(img)
    for c, src in enumerate(labels):  # the content at cell c came from cell labels[c]
        r, col = divmod(c, 4)
        sr, sc = divmod(int(src), 4)
        restored[sr * 16:(sr + 1) * 16, sc * 16:(sc + 1) * 16] = view[r * 16:(r + 1) * 16, col * 16:(col + 1) * 16]
    np.testing.assert_array_equal(restored, img)


def test_inpaint_mask_ratio_and_ssim_identity():
    config = PretrainConfig()
    mask = inpaint_mask(96, np.random.default_rng(0), config)
    assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0.0, 1.0} and 0.2 <= mask.mean() <= 1.0
    x = torch.rand(2, 3, 32, 32)
    assert float(ssim(x, x)) == 1.0 or abs(float(ssim(x, x)) - 1.0) < 1e-6
    assert float(reconstruction_loss(x, x, torch.ones(2, 1, 32, 32))) < 1e-6


def test_pretraining_learns_and_writes_a_loadable_resnet18(tmp_path):
    rng = np.random.default_rng(0)
    images = []
    for _ in range(4):
        img = np.full((96, 96, 3), 50, np.uint8)
        img[:48, :48] = (200, 40, 40)  # fixed layout: position is learnable
        img[48:, 48:] = (40, 40, 200)
        images.append((img + rng.integers(0, 10, img.shape)).astype(np.uint8))
    torch.manual_seed(0)
    encoder = EncoderSegment()
    before = {k: v.clone() for k, v in encoder.resnet18.state_dict().items()}
    out = tmp_path / "pre_models" / "demo_x.pth"
    config = PretrainConfig(steps=12, lr=1e-3, batch_size=2, grid=2, seed=0)
    hist = pretrain_encoder(encoder, images, config, torch.device("cpu"), out, log=lambda _: None)
    assert np.mean(hist["losses_rec"][-3:]) < np.mean(hist["losses_rec"][:3])
    assert np.mean(hist["losses_pos"][-3:]) < np.mean(hist["losses_pos"][:3])
    fresh = EncoderSegment()
    assert init_encoder(fresh, out) == str(out)  # strict load of a complete torchvision resnet18 state dict
    loaded = fresh.resnet18.state_dict()
    assert torch.equal(loaded["fc.weight"], before["fc.weight"])  # fc carried unchanged
    assert not torch.equal(loaded["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])
