"""The CUDA code paths of a GLASS training step (no host synchronisation), run on the CPU against the default ones."""
from __future__ import annotations

import pytest
import torch

import common.device
from glass.gas import GasConfig
from glass.losses import focal_loss, hard_mine, hard_mine_weights, radius_true
from glass.step import losses
from tests.test_glass_step import _setup

def _run(sync_free: bool, svd: int, monkeypatch) -> tuple:
    monkeypatch.setattr(common.device, "SYNC_FREE_ON_CPU", sync_free)
    proj, disc, true_emb, fake_emb, mask_s, center, noise = _setup(2)
    out = losses(proj, disc, true_emb, fake_emb, mask_s, center, noise, GasConfig(step=20, svd=svd), p=0.5)
    out.loss.backward()
    grads = {k: v.grad.clone() for k, v in [*proj.named_parameters(), *disc.named_parameters()]}
    return out, grads

@pytest.mark.parametrize("svd", [0, 1])
def test_sync_free_step_equals_default_step(svd, monkeypatch):
    ref, ref_grads = _run(False, svd, monkeypatch)
    free, free_grads = _run(True, svd, monkeypatch)
    assert free.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    for key in ("r_t", "r_g", "r_f"):
        a, b = getattr(ref, key), getattr(free, key)
        assert (torch.isnan(a) and torch.isnan(b)) or float(a) == pytest.approx(float(b), rel=1e-6), key
    assert float(free.p_true) == pytest.approx(float(ref.p_true)) and float(free.p_fake) == pytest.approx(float(ref.p_fake))
    for key in ref_grads:
        assert torch.allclose(ref_grads[key], free_grads[key], rtol=1e-5, atol=1e-7), key
    if svd == 1:
        assert torch.isfinite(free.r_f)

def test_shares_are_counted_like_the_reference():
    proj, disc, true_emb, fake_emb, mask_s, center, noise = _setup(3)
    out = losses(proj, disc, true_emb, fake_emb, mask_s, center, noise, GasConfig(step=2), p=0.5)
    anomalous = mask_s.reshape(-1) == 1
    with torch.no_grad():
        scores = disc(proj(fake_emb))[:, 0]
    assert float(out.p_true) == pytest.approx(float((scores[~anomalous] < 0.5).float().mean()), abs=1e-6)
    assert float(out.p_fake) == pytest.approx(float((scores[anomalous] >= 0.5).float().mean()), abs=1e-6)

def test_no_anomalous_rows_gives_nan_share(monkeypatch):
    proj, disc, true_emb, fake_emb, mask_s, center, noise = _setup(4)
    for flag in (False, True):
        monkeypatch.setattr(common.device, "SYNC_FREE_ON_CPU", flag)
        out = losses(proj, disc, true_emb, fake_emb, torch.zeros_like(mask_s), center, noise, GasConfig(step=2, svd=1),
                     p=0.5)
        assert torch.isnan(out.p_fake) and torch.isnan(out.r_f) and torch.isfinite(out.loss)

def test_weighted_hard_mining_equals_selection():
    torch.manual_seed(0)
    scores, mask = torch.rand(50, 1), (torch.rand(50, 1) < 0.3).float()
    assert focal_loss(scores, mask, weights=hard_mine_weights(scores, mask, 0.5)).item() == pytest.approx(
        focal_loss(*hard_mine(scores, mask, 0.5)).item(), rel=1e-6)
    assert torch.equal(hard_mine_weights(scores, mask, 0.0), torch.ones(50))

def test_radius_true_without_boolean_indexing(monkeypatch):
    torch.manual_seed(1)
    fake, true, center = torch.randn(40, 8), torch.randn(40, 8), torch.randn(40, 8)
    mask = (torch.rand(40) < 0.4).float()
    expected = radius_true(fake, true, center, mask, 0.75)
    monkeypatch.setattr(common.device, "SYNC_FREE_ON_CPU", True)
    assert radius_true(fake, true, center, mask, 0.75).item() == pytest.approx(expected.item(), rel=1e-7)

def test_deferred_epoch_checks_give_the_same_history(monkeypatch):
    """Trainer._epoch with the once-per-epoch synchronisation (CUDA path) records the same per-epoch means."""
    from glass.trainer import Trainer, TrainConfig
    from tests.glass_tiny import tiny_trainer_inputs

    results = []
    for flag in (False, True):
        monkeypatch.setattr(common.device, "SYNC_FREE_ON_CPU", flag)
        net, las, centre = tiny_trainer_inputs()
        trainer = Trainer(net, TrainConfig(meta_epochs=1, batch_size=4, limit=100, gas=GasConfig(step=3)),
                          torch.device("cpu"))
        c = centre.centre("batch", list(range(len(las))))
        results.append(trainer._epoch(las, c, 0, centre))
    assert results[0].keys() == results[1].keys()
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-6, nan_ok=True), key

def test_deferred_check_reports_the_first_non_finite_iteration(monkeypatch):
    import glass.trainer
    from glass.trainer import Trainer, TrainConfig
    from tests.glass_tiny import tiny_trainer_inputs

    monkeypatch.setattr(common.device, "SYNC_FREE_ON_CPU", True)
    original, calls = glass.trainer.losses, {"n": 0}

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(glass.trainer, "losses", poisoned)
    net, las, centre = tiny_trainer_inputs()
    trainer = Trainer(net, TrainConfig(meta_epochs=1, batch_size=4, limit=100, gas=GasConfig(step=3)),
                      torch.device("cpu"))
    from common.errors import UserError

    with pytest.raises(UserError, match="the loss became nan at epoch 0, iteration 1"):
        trainer._epoch(las, centre.centre("batch", list(range(len(las)))), 0, centre)
