"""``--select test|val|last``: the validation set is held-out good images + the method's own synthetic anomalies,
and no test label is read when selecting on it."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main as cli
from datasets import prepare
from datasets.samples import Sample
from datasets.validation import SyntheticValidation, split_for_validation
from runner.registry import method_class
from fg_trees import object_image


def _tree(root: Path, flipped: bool = False) -> Path:
    """Folder layout ``<root>/part/{train/good, test/good, test/bad}`` (no ground truth). ``flipped``: the same test
    images with the labels swapped (good images under bad/, anomalies under good/)."""
    rng = np.random.default_rng(0)
    cls = root / "part"
    (cls / "train" / "good").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(object_image("ellipse", 64, 64, rng)[0]).save(cls / "train" / "good" / f"{i:03d}.png")
    good, bad = ("bad", "good") if flipped else ("good", "bad")
    for folder in (good, bad):
        (cls / "test" / folder).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(object_image("ellipse", 64, 64, rng)[0]).save(cls / "test" / good / f"g{i}.png")
        image = object_image("ellipse", 64, 64, rng)[0]
        image[20:34, 20:34] = rng.integers(0, 256, (14, 14, 3))
        Image.fromarray(image).save(cls / "test" / bad / f"b{i}.png")
    return root


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    out = tmp_path_factory.mktemp("tex")
    assert prepare.main(["textures", "--output", str(out), "--per_category", "1", "--side", "64"]) == 0
    return out


def _flags(data: Path, results: Path, textures: Path, select: str, method: str = "glass") -> list[str]:
    common = ["--method", method, "--dataset", "folder", "--datapath", str(data), "--augpath", str(textures),
              "--results_path", str(results), "--gpu", "-1", "--seed", "0", "--num_workers", "0", "--heatmaps", "0",
              "--select", select, "--batch_size", "4"]
    if method == "slsg":
        return common + ["--steps", "4", "--eval_every", "2", "--imagesize", "96", "--batch_size", "2",
                         "--pretrain", "none"]
    return common + ["-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3", "--pretrain_embed_dimension",
                     "32", "--target_embed_dimension", "32", "--dsc_hidden", "32", "--meta_epochs", "3", "--step",
                     "2", "--limit", "8", "--resize", "64", "--imagesize", "64", "--fg", "0", "--distribution", "2"]


def _row(results: Path) -> dict:
    with open(results / "results.csv", newline="") as handle:
        return next(csv.DictReader(handle))


def test_split_is_seeded_disjoint_and_complete():
    samples = [Sample(f"/x/{i}.png", 0, "good", None) for i in range(20)]
    train, held = split_for_validation(samples, 0.2, 3)
    assert len(held) == 4 and len(train) == 16
    assert sorted(s.image_path for s in train + held) == sorted(s.image_path for s in samples)
    assert [s.image_path for s in split_for_validation(samples, 0.2, 3)[1]] == [s.image_path for s in held]
    assert [s.image_path for s in split_for_validation(samples, 0.2, 4)[1]] != [s.image_path for s in held]


def test_validation_set_is_fixed_and_masks_match_the_change(tmp_path):
    from datasets.preprocess import glass_preprocessing

    rng = np.random.default_rng(1)
    samples = []
    for i in range(2):
        Image.fromarray(object_image("ellipse", 64, 64, rng)[0]).save(tmp_path / f"{i}.png")
        samples.append(Sample(str(tmp_path / f"{i}.png"), 0, "good", None))
    pre = glass_preprocessing("x", 64, 64)

    def paint(sample, preprocessing, rng):  # a stand-in synthesis: a random square of constant value
        image = preprocessing.image(Image.open(sample.image_path).convert("RGB"))
        y, x = rng.integers(0, 48, 2)
        mask = torch.zeros(1, 64, 64)
        mask[:, y:y + 16, x:x + 16] = 1
        return torch.where(mask.bool(), torch.tensor(3.0), image), mask

    one, two = SyntheticValidation(samples, pre, paint, 7, 2), SyntheticValidation(samples, pre, paint, 7, 2)
    assert len(one) == 6 and [it["label"] for it in one] == [0, 1, 1, 0, 1, 1]
    for a, b in zip(one, two):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    for item in one:
        if item["label"]:
            changed = (item["image"] == 3.0).all(dim=0)
            assert torch.equal(changed, item["mask"][0].bool())
        else:
            assert item["mask"].sum() == 0


def test_glass_las_validation_anomalies(tmp_path, textures):
    from runner.cli import parse
    from runner.registry import method_class
    from runner.selection import prepare_selection

    data = _tree(tmp_path / "d")
    invocation = parse(_flags(data, tmp_path / "r", textures, "val"))
    args = invocation.options
    model = method_class("glass").build(invocation.config, torch.device("cpu"), "part", "folder", args.augpath)
    train = [Sample(str(p), 0, "good", None) for p in sorted((data / "part/train/good").iterdir())]
    seen = {}

    def score(method, validation):
        seen["items"] = [validation[i] for i in range(len(validation))]
        return {}

    selection = prepare_selection(args, model, train, None, score)
    assert len(selection.train) == 8 and selection.rule == "val (2 good + 2 LAS)"
    selection.evaluate(model)
    items = seen["items"]
    assert [it["label"] for it in items] == [0, 1, 0, 1]
    for normal, anomalous in ((items[0], items[1]), (items[2], items[3])):
        changed = (normal["image"] - anomalous["image"]).abs().amax(dim=0) > 1e-4
        mask = anomalous["mask"][0].bool()
        assert mask.any() and not changed[~mask].any()  # LAS changes the image only inside its mask


def _spy_test_reads(monkeypatch, method_cls):
    import datasets.torch_datasets as tds

    state = {"in_fit": False, "reads_in_fit": 0}
    original_get, original_fit = tds.TestDataset.__getitem__, method_cls.fit

    def get(self, index):
        state["reads_in_fit"] += state["in_fit"]
        return original_get(self, index)

    def fit(self, *a, **k):
        state["in_fit"] = True
        try:
            return original_fit(self, *a, **k)
        finally:
            state["in_fit"] = False

    monkeypatch.setattr(tds.TestDataset, "__getitem__", get)
    monkeypatch.setattr(method_cls, "fit", fit)
    return state


def test_val_selection_reads_no_test_label(tmp_path, textures, monkeypatch):
    glass = method_class("glass")
    state = _spy_test_reads(monkeypatch, glass)
    assert cli.main(_flags(_tree(tmp_path / "d"), tmp_path / "r_test", textures, "test")) == 0
    assert state["reads_in_fit"] > 0  # the spy sees the reference rule read the test set during training
    assert _row(tmp_path / "r_test")["selected_by"] == "test"
    state["reads_in_fit"] = 0
    assert cli.main(_flags(tmp_path / "d", tmp_path / "r_val", textures, "val")) == 0
    assert state["reads_in_fit"] == 0
    row = _row(tmp_path / "r_val")
    assert row["selected_by"].startswith("val (2 good + 2 LAS")
    # the same run on a test set with the labels swapped selects the same epoch and the same weights
    flipped = _tree(tmp_path / "f", flipped=True)
    assert cli.main(_flags(flipped, tmp_path / "r_flip", textures, "val")) == 0
    assert _row(tmp_path / "r_flip")["best_epoch"] == row["best_epoch"]
    weights = [sorted((tmp_path / r / "models").rglob("ckpt_best_*.pth")) for r in ("r_val", "r_flip")]
    a, b = (torch.load(w[0], weights_only=True) for w in weights)
    assert all(torch.equal(a["discriminator"][k], b["discriminator"][k]) for k in a["discriminator"])
    # image AUROC flips with the labels; under the reference rule that would change what is selected
    assert float(_row(tmp_path / "r_flip")["image_auroc"]) == pytest.approx(1 - float(row["image_auroc"]), abs=1e-6)


def test_last_selects_the_final_epoch(tmp_path, textures):
    assert cli.main(_flags(_tree(tmp_path / "d"), tmp_path / "r", textures, "last")) == 0
    row = _row(tmp_path / "r")
    assert row["selected_by"] == "last" and row["best_epoch"] == "2"


def test_slsg_val_selection_uses_its_simulator(tmp_path, textures, monkeypatch):
    slsg = method_class("slsg")
    state = _spy_test_reads(monkeypatch, slsg)
    assert cli.main(_flags(_tree(tmp_path / "d"), tmp_path / "r", textures, "val", "slsg")) == 0
    assert state["reads_in_fit"] == 0
    assert _row(tmp_path / "r")["selected_by"] == "val (2 good + 2 SLSG simulator)"


def test_val_uses_the_datasets_own_validation_images(tmp_path, textures, monkeypatch):
    """A tree with ``<class>/validation/good`` (MVTec LOCO ships one): those images are the validation set's good
    half and the anomalies' bases, and every training image is trained on (nothing held out of train/)."""
    glass = method_class("glass")
    seen = {}
    original_fit = glass.fit

    def fit(self, train, *a, **k):
        seen["train"] = [s.image_path for s in train]
        return original_fit(self, train, *a, **k)

    monkeypatch.setattr(glass, "fit", fit)
    data = _tree(tmp_path / "d")
    own = data / "part" / "validation" / "good"
    own.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(3):
        Image.fromarray(object_image("ellipse", 64, 64, rng)[0]).save(own / f"v{i}.png")
    made = []
    import glass.validation as glass_validation

    original_maker = glass_validation.anomaly_maker

    def maker(model, held=()):
        made.extend(s.image_path for s in held)
        return original_maker(model, held)

    monkeypatch.setattr(glass_validation, "anomaly_maker", maker)
    assert cli.main(_flags(data, tmp_path / "r", textures, "val")) == 0
    assert _row(tmp_path / "r")["selected_by"] == "val (3 validation/good + 3 LAS)"
    assert sorted(Path(p).name for p in seen["train"]) == [f"{i:03d}.png" for i in range(10)]  # all of train/good
    assert sorted(Path(p).name for p in made) == ["v0.png", "v1.png", "v2.png"]
