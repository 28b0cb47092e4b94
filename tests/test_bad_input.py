"""The bad-input table: each bad invocation ends in exit status 2 with exactly one `error:` line naming the flag or
path, no traceback, and nothing new under --results_path except the run record (README "Bad input").

Most rows run `runner.cli.main` in-process (an uncaught exception fails the test, as a traceback would); a few run
`main.py` as a subprocess to check the real script's stderr."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import tiny_demo, tiny_glass_flags
from runner.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny demo tree, a trained tiny GLASS model in `results`, a folder of images and a few bad files."""
    root = tmp_path_factory.mktemp("bad_input")
    demo = tiny_demo(root / "demo")
    results = root / "results"
    assert main(tiny_glass_flags(demo, results)) == 0
    images = root / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), (90, 90, 90)).save(images / "a.png")
    empty = root / "empty"
    empty.mkdir()
    (root / "garbage.pth").write_bytes(b"not a checkpoint")
    (root / "a_file").write_text("x")
    (root / "not_a_record.json").write_text('{"hello": 1}')
    return {"demo": demo, "results": results, "ckpt": results / "models/backbone_0/mvtec_brick", "root": root,
            "images": images, "empty": empty}


def _fill(arg: str, w: dict, out: Path) -> str:
    return arg.format(data=w["demo"].datapath, aug=w["demo"].augpath, ckpt=w["ckpt"], root=w["root"],
                      images=w["images"], empty=w["empty"], out=out)


TINY = ["--pretrain_embed_dimension", "64", "--target_embed_dimension", "64",
        "--dsc_hidden", "64", "--resize", "64", "--imagesize", "64", "--meta_epochs", "1", "--num_workers", "0",
        "--gpu", "-1", "--heatmaps", "0", "--fg", "0", "--distribution", "2", "--step", "5", "--limit", "8"]
PLACES = ["--datapath", "{data}", "--augpath", "{aug}", "--classes", "brick", "--results_path", "{out}"]
TRAIN = [*PLACES, "-b", "efficientnet_lite0", *TINY]
PREDICT = ["--test", "predict", "--checkpoint", "{ckpt}", "--input", "{images}", "--output", "{out}/pred"]

# (id, argv, words the one error line must contain)
ROWS = [
    ("missing datapath", ["--results_path", "{out}"], ["--datapath"]),
    ("datapath not a folder", ["--datapath", "{root}/nope", "--augpath", "{aug}", "--results_path", "{out}"],
     ["--datapath", "nope"]),
    ("missing augpath", ["--datapath", "{data}", "--results_path", "{out}"], ["--augpath"]),
    ("augpath not a folder", ["--datapath", "{data}", "--augpath", "{root}/dtd", "--results_path", "{out}"],
     ["--augpath", "dtd"]),
    ("unknown class", [*PLACES[:4], "--classes", "gadget", "--results_path", "{out}"], ["gadget", "brick"]),
    ("unknown method", ["--method", "patchcore", "--results_path", "{out}"], ["--method", "patchcore"]),
    ("unknown dataset", [*TRAIN, "--dataset", "imagenet"], ["--dataset", "imagenet"]),
    ("unknown test mode", [*TRAIN, "--test", "bogus"], ["--test", "bogus"]),
    ("not an integer", [*TRAIN, "--batch_size", "abc"], ["--batch_size", "abc"]),
    ("unknown backbone", [*PLACES, *TINY, "-b", "resnet7"], ["resnet7"]),
    ("two backbones", [*TRAIN, "-b", "resnet18"], ["--backbone_names"]),
    ("unknown layer", [*TRAIN, "-le", "layer9"], ["layer9"]),
    ("batch size 0", [*TRAIN, "--batch_size", "0"], ["--batch_size"]),
    ("negative batch size", [*TRAIN, "--batch_size", "-3"], ["--batch_size"]),
    ("imagesize 16", [*TRAIN, "--imagesize", "16"], ["--imagesize 16"]),
    ("imagesize 8", [*TRAIN, "--imagesize", "8"], ["--imagesize 8"]),
    ("lr inf", [*TRAIN, "--lr", "inf"], ["--lr"]),
    ("lr nan", [*TRAIN, "--lr", "nan"], ["--lr"]),
    ("lr 0", [*TRAIN, "--lr", "0"], ["--lr"]),
    ("negative lr", [*TRAIN, "--lr", "-1"], ["--lr"]),
    ("noise nan", [*TRAIN, "--noise", "nan"], ["--noise"]),
    ("meta_epochs 0", [*TRAIN, "--meta_epochs", "0"], ["--meta_epochs"]),
    ("dsc_layers 0", [*TRAIN, "--dsc_layers", "0"], ["--dsc_layers"]),
    ("patchsize 0", [*TRAIN, "--patchsize", "0"], ["--patchsize"]),
    ("radius above 1", [*TRAIN, "--radius", "2"], ["--radius"]),
    ("p of 1", [*TRAIN, "--p", "1"], ["--p"]),
    ("negative embedding cache", [*TRAIN, "--embedding_cache", "-1"], ["--embedding_cache"]),
    ("holdout above 1", [*TRAIN, "--holdout", "1.5"], ["--holdout"]),
    ("negative workers", [*TRAIN, "--num_workers", "-1"], ["--num_workers"]),
    ("slsg imagesize 100", ["--method", "slsg", *PLACES, "--imagesize", "100"], ["--imagesize 100"]),
    ("slsg steps 0", ["--method", "slsg", *PLACES, "--steps", "0"], ["--steps"]),
    ("slsg lr nan", ["--method", "slsg", *PLACES, "--lr", "nan"], ["--lr"]),
    ("slsg batch size 0", ["--method", "slsg", *PLACES, "--batch_size", "0"], ["--batch_size"]),
    ("test without checkpoint", [*TRAIN, "--test", "test"], ["checkpoint"]),
    ("checkpoint with two classes", [*TRAIN, "--classes", "x", "--checkpoint", "{ckpt}"], ["--checkpoint"]),
    ("results under a file", [*TRAIN, "--results_path", "{root}/a_file/r"], ["--results_path"]),
    ("config not found", ["--config", "{root}/nope.json", "--results_path", "{out}"], ["--config", "nope.json"]),
    ("config not a record", ["--config", "{root}/not_a_record.json", "--results_path", "{out}"],
     ["--config", "not_a_record.json"]),
    ("predict without checkpoint", ["--test", "predict", "--input", "{images}", "--output", "{out}/p"],
     ["--checkpoint"]),
    ("predict without input", ["--test", "predict", "--checkpoint", "{ckpt}", "--output", "{out}/p"], ["--input"]),
    ("predict checkpoint not found", [*PREDICT[:2], "--checkpoint", "{root}/none.pth", *PREDICT[4:]],
     ["--checkpoint", "none.pth"]),
    ("predict corrupt checkpoint", [*PREDICT[:2], "--checkpoint", "{root}/garbage.pth", *PREDICT[4:]],
     ["garbage.pth"]),
    ("predict other method", ["--method", "slsg", *PREDICT], ["GLASS checkpoint", "--method glass"]),
    ("predict empty folder", [*PREDICT[:4], "--input", "{empty}", "--output", "{out}/p"], ["--input"]),
    ("predict glob without match", [*PREDICT[:4], "--input", "{root}/*.nothing", "--output", "{out}/p"],
     ["--input"]),
    ("predict threshold nan", [*PREDICT, "--threshold", "nan"], ["--threshold"]),
    ("predict other imagesize", [*PREDICT, "--imagesize", "96"], ["--imagesize 96", "--imagesize 64"]),
    ("predict other backbone", [*PREDICT, "-b", "mobilenetv2"], ["--backbone_names mobilenetv2"]),
    ("predict output under a file", [*PREDICT[:6], "--output", "{root}/a_file/out"], ["--output"]),
]


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("argv, needles", [pytest.param(a, n, id=i) for i, a, n in ROWS])
def test_bad_invocation(world, tmp_path, capsys, argv, needles):
    out = tmp_path / "out"
    before = _files(world["results"])
    code = main([_fill(a, world, out) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert _files(world["results"]) == before  # the trained model's folder is untouched
    assert {p for p in _files(out) if not (p.name.startswith("run_") and p.suffix == ".json")} == set()


# A trained model's record is written once: flags that change the model are refused, all listed in one message.
RECORD_ROWS = [
    ("resume with another seed and lr", ["--seed", "1", "--lr", "0.001"],
     ["--seed 1: the checkpoint was trained with --seed 0", "--lr 0.001: the checkpoint was trained with --lr 0.0001",
      "--retrain"]),
    ("re-evaluate at another size", ["--imagesize", "96", "--resize", "96"],
     ["--imagesize 96: the checkpoint was trained with --imagesize 64", "--resize 96", "--retrain"]),
    ("test at another size", ["--test", "test", "--imagesize", "96"], ["--imagesize 96", "--imagesize 64"]),
    ("test with other synthesis", ["--test", "test", "--noise", "0.5"], ["--noise 0.5", "--noise 0.015"]),
]


@pytest.mark.parametrize("extra, needles", [pytest.param(e, n, id=i) for i, e, n in RECORD_ROWS])
def test_stored_model_keeps_its_settings(world, capsys, extra, needles):
    demo, results = world["demo"], world["results"]
    before = {p: p.read_bytes() for p in world["ckpt"].rglob("*") if p.is_file()}
    code = main(tiny_glass_flags(demo, results) + extra)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert {p: p.read_bytes() for p in world["ckpt"].rglob("*") if p.is_file()} == before


def test_evaluation_only_flags_may_differ(world, capsys):
    """--gt_rule, --batch_size, --num_workers, --save_maps do not change the model: re-evaluation runs."""
    demo, results = world["demo"], world["results"]
    code = main(tiny_glass_flags(demo, results) + ["--test", "test", "--gt_rule", "nonzero", "--batch_size", "2"])
    assert code == 0, capsys.readouterr().err


def test_flags_left_out_come_from_the_checkpoint(world, tmp_path, capsys):
    """--test test and predict with no model flag at all rebuild the stored model (64 px, lite0)."""
    demo, results = world["demo"], world["results"]
    code = main(["--test", "test", "--datapath", str(demo.datapath), "--classes", "brick", "--results_path",
                 str(results), "--num_workers", "0", "--gpu", "-1", "--heatmaps", "0"])
    assert code == 0, capsys.readouterr().err
    assert main(["--test", "predict", "--checkpoint", str(world["ckpt"]), "--input", str(world["images"]),
                 "--output", str(tmp_path / "p")]) == 0


@pytest.mark.parametrize("argv, needle", [
    (["--batch_size", "0"], "--batch_size"),
    (["--method", "glass", "--imagesize", "8"], "--imagesize 8"),
    (["--test", "predict", "--checkpoint", "nowhere.pth", "--input", "x.png"], "nowhere.pth"),
])
def test_the_script_prints_one_line_without_traceback(tmp_path, argv, needle):
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "--datapath", str(tmp_path), *argv,
                             "--results_path", str(tmp_path / "r")], cwd=tmp_path, capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "r").exists()
