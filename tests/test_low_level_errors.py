"""Low-level failures become one clear error: metrics.evaluate's --output_dir checked before computing, a checkpoint
of another embedding width names both widths, and divergent training stops with the NaN message and keeps the last
good checkpoint (GLASS through main.py, SLSG through its training loop)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import main
from common.errors import UserError
from tests.cli_helpers import tiny_demo, tiny_glass_flags
from tests.test_metrics_evaluate import mvtec_tree  # noqa: F401  (the fixture)


def _one_error(err: str) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_evaluate_output_dir_that_is_a_file_fails_before_computing(mvtec_tree, tmp_path, capsys,  # noqa: F811
                                                                   monkeypatch):
    import metrics.evaluate as evaluate_module

    root, _ = mvtec_tree
    not_a_folder = tmp_path / "out.txt"
    not_a_folder.write_text("x")
    monkeypatch.setattr(evaluate_module, "_evaluate_mvtec", lambda *a, **k: pytest.fail("computed first"))
    code = evaluate_module.main(["--anomaly_maps_dir", str(root / "maps"), "--dataset_base_dir", str(root / "data"),
                                 "--output_dir", str(not_a_folder)])
    line = _one_error(capsys.readouterr().err)
    assert code == 2 and "--output_dir" in line and str(not_a_folder) in line and "not a folder" in line


@pytest.fixture(scope="module")
def glass_demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory.mktemp("low_level") / "data")


def test_checkpoint_of_another_embedding_width_names_both_widths(glass_demo, tmp_path, capsys):
    results = tmp_path / "results"
    assert main.main(tiny_glass_flags(glass_demo, results) + ["--classes", "brick"]) == 0
    capsys.readouterr()
    flags = tiny_glass_flags(glass_demo, results) + ["--classes", "brick", "--test", "test",
                                                     "--target_embed_dimension", "32"]
    # a toolkit checkpoint stores its settings: the differing flag is refused, stored vs given
    code = main.main(flags)
    line = _one_error(capsys.readouterr().err)
    assert code == 2 and "--target_embed_dimension 64" in line and "--target_embed_dimension 32" in line
    # a reference-style checkpoint (weights only, no stored settings): the weights' width is named beside the flag's
    folder = results / "models/backbone_0/mvtec_brick"
    for file in folder.glob("*.pth"):
        state = torch.load(file, weights_only=True)
        state.pop("toolkit", None)
        torch.save(state, file)
    (folder / "toolkit.json").unlink(missing_ok=True)
    code = main.main(flags)
    line = _one_error(capsys.readouterr().err)
    assert code == 2 and "--target_embed_dimension 64" in line and "width 32" in line
    assert "Error(s) in loading state_dict" not in line


def test_glass_divergence_stops_with_the_nan_message_and_keeps_the_last_good_checkpoint(glass_demo, tmp_path,
                                                                                         capsys):
    results = tmp_path / "results"
    code = main.main(tiny_glass_flags(glass_demo, results, epochs=3) + ["--classes", "brick", "--lr", "1e5"])
    line = _one_error(capsys.readouterr().err)
    assert code == 2 and "nan or inf" in line and "--lr" in line
    latest = torch.load(results / "models/backbone_0/mvtec_brick/ckpt.pth", weights_only=True)
    for name in ("discriminator", "pre_projection"):
        for key, value in latest[name].items():
            assert torch.isfinite(value).all(), f"{name}.{key} saved diverged"


def test_slsg_divergence_never_saves_diverged_weights(tmp_path):
    from slsg.network import SLSGNet
    from slsg.simulate import SLSGSimulator
    from slsg.trainer import TrainConfig, train

    size = 96
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(2)]
    torch.manual_seed(0)
    model = SLSGNet(grid=size // 16)
    config = TrainConfig(steps=3, lr=float("inf"), batch_size=1, eval_every=0, save_every=1)
    last = tmp_path / "m_last.tch"
    with pytest.raises(UserError, match="nan or inf|became nan|became inf"):
        train(model, images, SLSGSimulator("grass", None, images), config, torch.device("cpu"), tmp_path / "m.tch",
              last, log=lambda _: None)
    if last.is_file():
        state = torch.load(last, weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
