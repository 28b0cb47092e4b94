"""The CUDA subset: the same computations on the GPU as on the CPU (skipped without a GPU; see tests/conftest.py).

Tolerances: cuDNN's default (non-autotuned, deterministic) convolutions and TF32 disabled for matmuls give float32
results within ~1e-4 of the CPU; the reference fixtures' own tolerances are kept for the parity checks.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import common.device
from glass.gas import GasConfig
from glass.step import losses
from tests.glass_tiny import SIZE, tiny_trainer_inputs
from tests.test_glass_step import _setup

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def _no_tf32():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("svd", [0, 1])
def test_glass_step_on_cuda_equals_cpu(svd, cuda_device):
    cpu = _setup(5)
    cfg = GasConfig(step=20, svd=svd)
    out_cpu = losses(*cpu, cfg, p=0.5)
    out_cpu.loss.backward()
    gpu = [x.to(cuda_device) if torch.is_tensor(x) else x.to(cuda_device) for x in _setup(5)]
    out_gpu = losses(*gpu, cfg, p=0.5)
    out_gpu.loss.backward()
    assert out_gpu.loss.item() == pytest.approx(out_cpu.loss.item(), rel=1e-4)
    assert float(out_gpu.r_t) == pytest.approx(float(out_cpu.r_t), rel=1e-4)
    for a, b in zip(cpu[1].parameters(), gpu[1].parameters()):
        assert torch.allclose(a.grad, b.grad.cpu(), rtol=1e-3, atol=1e-5)


def test_tiny_glass_train_and_predict_on_cuda(cuda_device):
    results = []
    for device in (torch.device("cpu"), cuda_device):
        net, las, centre = tiny_trainer_inputs(seed=0)
        from glass.trainer import TrainConfig, Trainer, CentreCache

        net = net.to(device)
        centre = CentreCache(net, las.images, 4, 0, device)
        trainer = Trainer(net, TrainConfig(meta_epochs=1, batch_size=4, limit=100, gas=GasConfig(step=5)), device)
        stats = trainer._epoch(las, centre.centre("batch", list(range(len(las)))), 0, centre)
        net.eval()
        with torch.no_grad():
            scores, _ = net.patch_scores(torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
                                         .to(device))
        results.append((stats, scores.cpu()))
    (cpu_stats, cpu_scores), (gpu_stats, gpu_scores) = results
    assert gpu_stats["loss"] == pytest.approx(cpu_stats["loss"], rel=1e-3)
    assert torch.allclose(cpu_scores, gpu_scores, atol=1e-3)


def test_bf16_on_cuda_close_to_fp32(cuda_device):
    from common import precision

    net, _, _ = tiny_trainer_inputs(seed=1)
    net = net.to(cuda_device).eval()
    images = torch.randn(4, 3, SIZE, SIZE, device=cuda_device)
    with torch.no_grad():
        ref, _ = net.patch_scores(images)
        precision.set_precision("bf16")
        try:
            low, _ = net.patch_scores(images)
        finally:
            precision.set_precision("fp32")
    assert low.dtype == torch.float32 and (ref - low).abs().max().item() < 0.02


def test_glass_reference_fixture_on_cuda(fixtures_dir, cuda_device):
    """The reference checkpoint on the GPU: scores and maps within the CPU fixture test's tolerances x 10."""
    from tests.test_glass_fixture import _args
    from glass.method import GlassMethod
    from PIL import Image

    root = fixtures_dir / "glass-reference"
    data = np.load(root / "expected.npz")
    model = GlassMethod.from_args(_args(root), cuda_device, "carpet")
    model.load(root / "results" / "models" / "backbone_0" / "mvtec_carpet", which="best")
    pre = model.preprocessing(train=False)
    inputs = torch.stack([pre.image(Image.open(root / p).convert("RGB")) for p in data["image_paths"]])
    scores, maps = model.predict(inputs)
    assert np.abs(scores - data["image_scores"]).max() < 1e-4
    assert np.abs(maps - data["anomaly_maps"]).max() < 1e-4


def test_slsg_forward_on_cuda_matches_cpu(fixtures_dir, cuda_device):
    from slsg.network import SLSGNet, anomaly_map, load_network, read_state_dict
    from tests.test_slsg_fixture import _inputs

    root = fixtures_dir / "slsg-reference"
    debug = dict(np.load(root / "debug.npz"))
    net = SLSGNet()
    load_network(net, read_state_dict(root / "pushpins.tch"))
    net.eval()
    x = _inputs(debug["inputs_resized_uint8"][:2])
    with torch.no_grad():
        cpu_map = anomaly_map(net(x)[0]).numpy()
        net = net.to(cuda_device)
        gpu_map = anomaly_map(net(x.to(cuda_device))[0]).cpu().numpy()
    # Tier 2 of the SLSG fixture README (kNN near-ties may flip between devices)
    assert np.abs(cpu_map - gpu_map).max() <= 2e-3


def test_sync_free_flag_is_automatic_on_cuda(cuda_device):
    assert common.device.avoid_host_sync(torch.zeros(1, device=cuda_device))
    assert not common.device.avoid_host_sync(torch.zeros(1))
