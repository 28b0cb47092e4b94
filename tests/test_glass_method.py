"""GlassMethod construction: clear errors for missing weights and bad flags; reference checkpoint folders."""
from __future__ import annotations

import pytest
import torch

from common.errors import UserError
from glass.method import GlassMethod
from runner.cli import parse


def _method(*extra: str) -> GlassMethod:
    config = parse(["--dataset", "mvtec", *extra]).config
    return GlassMethod.build(config, torch.device("cpu"), "carpet", "mvtec")


def test_missing_wideresnet_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match="wide_resnet50_2-95faca4d.pth") as error:
        _method()
    assert str(tmp_path) in str(error.value) and "--backbone_weights" in str(error.value)


def test_bad_flags_are_user_errors():
    with pytest.raises(UserError, match="one backbone"):
        _method("-b", "resnet18", "-b", "resnet50")
    with pytest.raises(UserError, match="--dsc_layers"):
        _method("-b", "efficientnet_lite0", "--dsc_layers", "0")


def test_reference_folder_without_training_state_is_not_resumed(fixtures_dir, tmp_path):
    """--test ckpt on a folder holding only a reference ckpt_best file stops with advice instead of skipping."""
    from glass.trainer import Trainer, TrainConfig

    method = _method("-b", "efficientnet_lite0", "--target_embed_dimension", "64",
                     "--pretrain_embed_dimension", "64", "--dsc_hidden", "32")
    folder = tmp_path / "mvtec_carpet"
    folder.mkdir()
    source = fixtures_dir / "glass-reference" / "results" / "models" / "backbone_0" / "mvtec_carpet"
    (folder / "ckpt_best_2.pth").write_bytes((source / "ckpt_best_2.pth").read_bytes())
    with pytest.raises(UserError, match="--test test"):
        Trainer(method.net, TrainConfig(), torch.device("cpu")).resume(folder)
    # and loading it into heads of another width names the flags
    with pytest.raises(UserError, match="--target_embed_dimension"):
        method.load(folder)
