"""--precision (autocast of the backbone), --compile (with its fallback) and the CUDA settings, checked on the CPU."""
from __future__ import annotations

import warnings

import pytest
import torch

import main
from common import compiled, device as device_mod, precision
from tests.cli_helpers import tiny_demo, tiny_glass_flags
from tests.glass_tiny import SIZE, tiny_trainer_inputs


@pytest.fixture(autouse=True)
def _reset():
    yield
    precision.set_precision("fp32")
    compiled.set_compile(False)
    device_mod.set_cudnn_benchmark(False)


def test_bf16_scores_close_to_fp32_on_cpu():
    net, _, _ = tiny_trainer_inputs(seed=1)
    net.eval()
    images = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, grid = net.patch_scores(images)
        precision.set_precision("bf16")
        emb, _ = net.embed(images)
        low, low_grid = net.patch_scores(images)
    assert emb.dtype == torch.float32 and low.dtype == torch.float32 and grid == low_grid
    assert not torch.equal(ref, low)  # autocast really ran in bf16
    assert (ref - low).abs().max().item() < 0.02
    assert torch.corrcoef(torch.stack([ref, low]))[0, 1].item() > 0.99


def test_fp16_on_cpu_runs_or_falls_back():
    net, _, _ = tiny_trainer_inputs(seed=1)
    precision.set_precision("fp16")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores, _ = net.patch_scores(torch.randn(2, 3, SIZE, SIZE))
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()


def test_unknown_precision_is_a_user_error():
    from common.errors import UserError

    with pytest.raises(UserError, match="--precision"):
        precision.set_precision("int8")


def test_compile_failure_falls_back_with_a_warning(monkeypatch):
    def broken(fn, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    compiled.set_compile(True)
    with pytest.warns(UserWarning, match="--compile 1: torch.compile of f failed"):
        f = compiled.maybe_compile(lambda x: x + 1, "f")
    assert f(1) == 2


def test_compiled_call_failure_falls_back_with_a_warning(monkeypatch):
    def fails_when_called(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("backend failed")
        return run

    monkeypatch.setattr(torch, "compile", fails_when_called)
    compiled.set_compile(True)
    f = compiled.maybe_compile(lambda x: x * 3, "g")
    with pytest.warns(UserWarning, match="torch.compile of g failed"):
        assert f(2) == 6
    assert f(3) == 9  # stays eager, no second warning needed


def test_compile_off_returns_the_function_itself():
    def fn(x):
        return x

    assert compiled.maybe_compile(fn, "fn") is fn


def test_cudnn_settings_only_touch_cuda():
    device_mod.set_cudnn_benchmark(True)
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    device_mod.apply_cuda_settings(torch.device("cpu"))
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == before


def test_cli_trains_and_evaluates_in_bf16_with_compile_flag(tmp_path, monkeypatch, capsys):
    def broken(fn, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    demo = tiny_demo(tmp_path / "data")
    results = tmp_path / "res"
    with pytest.warns(UserWarning, match="running it uncompiled"):
        code = main.main(tiny_glass_flags(demo, results) + ["--classes", "brick", "--precision", "bf16",
                                                              "--compile", "1", "--threads", "1"])
    assert code == 0
    assert (results / "results.csv").is_file()
    assert precision.current() == "bf16"


def test_cli_rejects_bad_precision(capsys):
    assert main.main(["--method", "glass", "--precision", "fp8"]) == 2
    err = capsys.readouterr().err
    assert "--precision" in err and "fp8" in err and "Traceback" not in err
