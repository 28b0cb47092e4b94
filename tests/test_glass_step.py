"""One GLASS training iteration: reference parity facts and the optimised GAS against the reference order."""
from __future__ import annotations

import copy

import pytest
import torch

from glass.gas import GasConfig, gas_fast, gas_reference
from glass.losses import focal_loss, hard_mine
from glass.model import Discriminator, Projection, count_bn_forwards
from glass.step import losses

D, H, B, GRID = 48, 32, 2, 36  # feature width, hidden width, batch, patches per image


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    proj = Projection(D, D, 1)
    disc = Discriminator(D, 2, H)
    n = B * GRID
    true_emb = torch.randn(n, D)
    fake_emb = true_emb + 0.8 * torch.randn(n, D) * (torch.rand(n, 1) < 0.3)
    mask_s = (torch.rand(B, 6, 6) < 0.3).float()
    center = torch.randn(GRID, D).mul(0.1).repeat(B, 1)
    noise = torch.randn(n, D) * 0.015
    return proj, disc, true_emb, fake_emb, mask_s, center, noise


@pytest.mark.parametrize("svd,mining,step", [(0, 1, 20), (1, 1, 20), (0, 0, 20), (1, 1, 7), (0, 1, 3)])
def test_fast_gas_matches_reference_order(svd, mining, step):
    proj, disc, true_emb, fake_emb, mask_s, center, noise = _setup()
    cfg = GasConfig(step=step, radius=0.75, mining=mining, svd=svd)
    runs = []
    for fast in (False, True):
        p, d = copy.deepcopy(proj), copy.deepcopy(disc)
        p.train()
        d.train()
        out = losses(p, d, true_emb, fake_emb, mask_s, center, noise, cfg, p=0.5, fast=fast)
        out.loss.backward()
        grads = {f"P.{k}": v.grad.clone() for k, v in p.named_parameters()}
        grads.update({f"D.{k}": v.grad.clone() for k, v in d.named_parameters()})
        runs.append((out, grads, d.state_dict()))
    (ref, ref_grads, ref_sd), (fast, fast_grads, fast_sd) = runs
    assert torch.isfinite(ref.loss)
    assert abs(ref.loss.item() - fast.loss.item()) < 1e-4
    assert abs(float(ref.r_t) - float(fast.r_t)) < 1e-6
    if step >= 5 or mining == 0:
        assert abs(float(ref.r_g) - float(fast.r_g)) < 1e-4
    for key in ref_grads:
        assert torch.allclose(ref_grads[key], fast_grads[key], atol=1e-4, rtol=1e-3), key
    for key in ref_sd:
        assert torch.allclose(ref_sd[key].float(), fast_sd[key].float(), atol=1e-5), key


def test_gas_moves_features_and_projects():
    proj, disc, true_emb, _, _, center, noise = _setup(1)
    true = proj(true_emb)
    r_t = torch.tensor(1.0)
    for svd in (0, 1):
        d = copy.deepcopy(disc)
        out = gas_fast(d, true, center, r_t, noise, GasConfig(step=20, svd=svd))
        ref = gas_reference(copy.deepcopy(disc), true, center, r_t, noise, GasConfig(step=20, svd=svd))
        assert torch.allclose(out.gaus, ref.gaus, atol=1e-5)
        assert abs(out.true_loss.item() - ref.true_loss.item()) < 1e-5
        # step 20: the last projection (after step 19) is the last move, so every row ends inside its band
        if svd == 0:  # manifold: |gaus - true| in [0.5, 1]; here |noise| ~ 0.1, so the band binds (pushed out)
            dist = torch.norm(out.gaus - true, dim=1).detach()
            assert float(dist.detach().min()) >= 0.5 - 1e-5 and float(dist.detach().max()) <= 1.0 + 1e-5
        else:  # hypersphere: |gaus - c| in [r_t, 2 r_t]
            dist = torch.norm(out.gaus - center, dim=1).detach()
            assert float(dist.min()) >= 1.0 - 1e-4 and float(dist.max()) <= 2.0 + 1e-4
        assert out.gaus.requires_grad  # gradients reach P through true, as in the reference


def test_reference_parity_facts():
    """BN num_batches_tracked +22 per iteration (21 GAS forwards + the LAS forward), r_t / r_g scalars."""
    proj, disc, true_emb, fake_emb, mask_s, center, noise = _setup(2)
    for fast in (False, True):
        d = copy.deepcopy(disc)
        before = count_bn_forwards(d)
        out = losses(proj, d, true_emb, fake_emb, mask_s, center, noise, GasConfig(step=20), p=0.5, fast=fast)
        assert count_bn_forwards(d) - before == 22
        assert out.r_t.shape == () and out.r_g.shape == ()
        assert torch.isfinite(out.loss) and out.loss.requires_grad


def test_hard_mining_and_focal_loss_closed_form():
    scores = torch.tensor([[0.9], [0.2], [0.6], [0.1]])
    mask = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    mined, target = hard_mine(scores, mask, 0.5)
    # squared errors 0.01, 0.64, 0.36, 0.01; median 0.185 -> rows 1 and 2 kept
    assert mined.flatten().tolist() == pytest.approx([0.2, 0.6]) and target.flatten().tolist() == [1.0, 0.0]
    pt = torch.tensor([0.2 * (1 - 1e-5) + 0.8 * 1e-5, 0.4 * (1 - 1e-5) + 0.6 * 1e-5]) + 1e-5
    expected = (-(1 - pt) ** 2 * pt.log()).mean()
    assert float(focal_loss(mined, target)) == pytest.approx(float(expected), rel=1e-6)


def test_written_out_ascent_gradient_matches_autograd():
    """AscentGrad (the hand-written backward of the fast GAS) against autograd, including rows scored so low that
    torch's BCE clamp makes the gradient vanish (the reference's behaviour there)."""
    from glass.gas import AscentGrad, _ascent_grad

    torch.manual_seed(3)
    n, hidden = 64, 16
    z_true, zg = torch.randn(n, hidden) + 0.5, torch.randn(n, hidden)
    sum_t = z_true.sum(0)
    mean_t = sum_t / n
    css_t = ((z_true - mean_t) ** 2).sum(0)
    params = [torch.randn(hidden), torch.randn(hidden), torch.randn(1, hidden)]
    for scale in (1.0, 40.0):  # 40: many logits below -27.6, where sigmoid(1 - s) s < 1e-12
        weights = [params[0], params[1], params[2] * scale]
        expected, mean, var = _ascent_grad(zg, sum_t, mean_t, css_t, weights, 1e-5, n)
        got, got_mean, got_var = AscentGrad(zg)(zg, sum_t, mean_t, css_t, weights, 1e-5, n)
        assert torch.allclose(got_mean, mean, rtol=0, atol=1e-6) and torch.allclose(got_var, var, rtol=1e-6)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-9 * float(expected.abs().max())), scale
        assert float(expected.abs().max()) > 0
