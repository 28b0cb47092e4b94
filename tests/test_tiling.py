"""Any image size: ``--keep_aspect 1`` (pad, nothing cropped) and ``--tile`` (tiles trained on, scored, stitched)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import main as cli
from datasets.offline_textures import build_texture_folder
from datasets.preprocess import Preprocessing, glass_preprocessing
from datasets.tiling import predict_tiled, tile_boxes, write_train_tiles
from datasets.samples import Sample

H, W = 800, 3000
# centre y, centre x, radius of the defect in each defective test strip: 70 px from the right edge, and near the
# top-left corner; a centre crop (the middle 800 px of the width) holds neither
DEFECTS = ((400, 2930, 45), (120, 90, 45))


def test_tile_boxes_cover_the_image_with_the_overlap():
    boxes = tile_boxes(800, 3000, 400, 50)
    cover = np.zeros((800, 3000), int)
    for top, left, bottom, right in boxes:
        assert bottom - top == 400 and right - left == 400
        cover[top:bottom, left:right] += 1
    assert cover.min() >= 1
    xs = sorted({b[1] for b in boxes})
    assert xs[:3] == [0, 350, 700] and xs[-1] == 2600  # stride tile - overlap, last tile flush with the edge
    assert tile_boxes(50, 60, 400, 50) == [(0, 0, 50, 60)]


def test_stitching_averages_overlaps_and_takes_the_max_score():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(2, 3, 70, 150)).astype(np.float32))

    def identity(tiles):  # map = channel 0; score = its max
        maps = tiles[:, 0].numpy()
        return maps.reshape(len(maps), -1).max(axis=1), maps

    scores, maps = predict_tiled(identity, images, 32, 8, batch=5)
    np.testing.assert_allclose(maps, images[:, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, images[:, 0].amax(dim=(1, 2)).numpy(), rtol=0, atol=1e-6)

    def offset(tiles):  # every tile adds its own index: overlaps must hold the mean of the covering tiles
        maps = np.stack([np.full(t.shape[-2:], float(k)) for k, t in enumerate(tiles)])
        return maps.max(axis=(1, 2)), maps

    _, maps = predict_tiled(offset, images[:1], 32, 8, batch=100)
    boxes = tile_boxes(70, 150, 32, 8)
    expected_sum, count = np.zeros((70, 150)), np.zeros((70, 150))
    for k, (t, le, b, r) in enumerate(boxes):
        expected_sum[t:b, le:r] += k
        count[t:b, le:r] += 1
    np.testing.assert_allclose(maps[0], expected_sum / count, atol=1e-6)


def test_keep_aspect_pads_instead_of_cropping():
    red = np.zeros((487, 980, 3), np.uint8)
    red[:, :40] = (255, 0, 0)  # a stripe at the left edge, which the reference's centre crop cuts away
    pil = Image.fromarray(red)
    cropped = glass_preprocessing("x", 64, 64).image_uint8(pil)
    kept = glass_preprocessing("x", 64, 64, keep_aspect=True).image_uint8(pil)
    assert cropped.shape == kept.shape == (64, 64, 3)
    assert cropped[..., 0].max() == 0 and kept[:, 0, 0].max() > 200
    assert glass_preprocessing("x", 64, 64, keep_aspect=True).resized_size(980, 487) == (64, 32)
    assert kept[:16].max() == 0 and kept[48:].max() == 0  # padding above and below the content band
    pre = Preprocessing(64, 64, keep_aspect=True)
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    # the map goes back on the original grid: the padding is cut off, the content stretched to 980 x 487
    from runner.results import to_original_resolution

    anomaly = np.zeros((64, 64), np.float32)
    anomaly[16:48, :3] = 1.0  # left edge of the content band (rows 16..47 hold the image)
    back = to_original_resolution(anomaly, pre, 980, 487)
    assert back.shape == (487, 980) and back[:, :20].mean() > 0.8 and back[:, 100:].max() == 0


def _strip(rng: np.random.Generator, defect: tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    base = 120 + 20 * np.sin(xx / 37.0) * np.sin(yy / 41.0) + rng.normal(0, 3, (H, W))
    rgb = np.repeat(base[..., None], 3, axis=2)
    mask = np.zeros((H, W), bool)
    if defect is not None:
        cy, cx, r = defect
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        rgb[mask] = rng.integers(0, 256, (int(mask.sum()), 3))  # a rough, coloured patch (a burn, a stain)
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


@pytest.fixture(scope="module")
def strip_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("strip")
    rng = np.random.default_rng(0)
    cls = root / "data" / "strip"
    for i in range(3):
        (cls / "train" / "good").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_strip(rng, None)[0]).save(cls / "train" / "good" / f"{i:03d}.png")
    for kind, defects in (("good", (None, None)), ("blob", DEFECTS)):
        (cls / "test" / kind).mkdir(parents=True, exist_ok=True)
        for i, defect in enumerate(defects):
            image, mask = _strip(rng, defect)
            Image.fromarray(image).save(cls / "test" / kind / f"{i:03d}.png")
            if defect is not None:
                (cls / "ground_truth" / "blob").mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(cls / "ground_truth" / "blob" / f"{i:03d}_mask.png")
    build_texture_folder(root / "tex", per_category=1, side=64)
    return root


def test_a_centre_crop_misses_the_edge_defect(strip_tree):
    from datasets.torch_datasets import ground_truth

    for i in range(len(DEFECTS)):
        sample = Sample(str(strip_tree / f"data/strip/test/blob/{i:03d}.png"), 1, "blob",
                        str(strip_tree / f"data/strip/ground_truth/blob/{i:03d}_mask.png"))
        assert ground_truth(sample, glass_preprocessing("strip", 64, 64)).sum() == 0


def test_training_tiles_are_written_once(strip_tree, tmp_path):
    samples = [Sample(str(p), 0, "good", None) for p in sorted((strip_tree / "data/strip/train/good").iterdir())]
    tiles = write_train_tiles(samples, 400, 50, tmp_path)
    assert len(tiles) == 3 * len(tile_boxes(H, W, 400, 50))
    assert Image.open(tiles[0].image_path).size == (400, 400)


class ColourDistance:
    """A transparent stand-in detector: per-pixel distance to the mean training colour (fitted on what ``fit``
    gets), so the test is about what tiling shows the detector, not about how well a short GLASS run learns."""

    def __init__(self, side: int):
        self.pre = glass_preprocessing("strip", side, side)
        self.mean = None

    def preprocessing(self, train: bool):
        return self.pre

    def fit(self, train, ckpt_dir, evaluate=None):
        from datasets.torch_datasets import TrainImages

        images = TrainImages(train, self.pre)
        self.mean = torch.stack([images[i]["image"] for i in range(len(images))]).mean(dim=(0, 2, 3))
        self.fitted_on = len(train)
        return {}

    def predict(self, images):
        maps = (images - self.mean.view(1, 3, 1, 1)).abs().amax(dim=1).numpy()
        return maps.reshape(len(maps), -1).max(axis=1), maps


def _scored(strip_tree, model):
    from datasets.registry import load_samples
    from datasets.torch_datasets import TestDataset

    test = load_samples("mvtec", strip_tree / "data", "strip", "test")
    train = load_samples("mvtec", strip_tree / "data", "strip", "train")
    model.fit(train, None)
    from runner.evaluation import compute_metrics, loader, predict_dataset

    batches = loader(TestDataset(test, model.preprocessing(train=False)), 2, 0)
    return compute_metrics(predict_dataset(model, batches))


def test_the_tiled_route_finds_the_edge_defect_the_centre_crop_misses(strip_tree, tmp_path):
    from datasets.tiling import TiledModel, maybe_tiled

    plain = ColourDistance(64)
    assert maybe_tiled(plain, 0, 0, [], tmp_path) is plain  # no --tile: the method itself
    cropped = _scored(strip_tree, ColourDistance(64))
    assert np.isnan(cropped["pixel_auroc"])  # the crop holds no defect pixel at all
    from datasets.registry import load_samples

    test = load_samples("mvtec", strip_tree / "data", "strip", "test")
    tiled = maybe_tiled(ColourDistance(64), 400, 50, test, tmp_path / "tiles")
    assert isinstance(tiled, TiledModel)
    row = _scored(strip_tree, tiled)
    assert tiled.model.fitted_on == 3 * len(tile_boxes(H, W, 400, 50))  # it was trained on the tiles
    # the rough patch is found (some of its random colours are close to the mean, hence < 1 pixel-wise)
    assert row["image_auroc"] == 1.0 and row["pixel_auroc"] > 0.75


def _tiled_glass(strip_tree, results, width: int, *extra: str) -> list[str]:
    """main.py flags: GLASS on the strips with the offline EfficientNet-Lite0 features at 64 px, heads ``width``
    wide; ``extra`` last (the tests cut the trailing tile flags)."""
    return ["--method", "glass", "--dataset", "mvtec", "--datapath", str(strip_tree / "data"), "--augpath",
            str(strip_tree / "tex"), "--results_path", str(results), "--gpu", "-1", "-b", "efficientnet_lite0",
            "-le", "layer2", "-le", "layer3", "--pretrain_embed_dimension", str(width), "--target_embed_dimension",
            str(width), "--dsc_hidden", str(width), "--resize", "64", "--imagesize", "64", "--batch_size", "8",
            "--num_workers", "0", "--fg", "0", "--distribution", "2", "--heatmaps", "0", *extra]


def test_a_tiled_glass_run_finds_the_edge_defects(strip_tree, tmp_path):
    """End to end through main.py with the real (offline ImageNet) EfficientNet-Lite0 features: GLASS trains on the
    tiles, scores whole strips (maps on the full 3000 px width) and localises the small defects at the image edges,
    selected without test labels (``--select last``)."""
    results = tmp_path / "r"
    flags = _tiled_glass(strip_tree, results, 64, "--meta_epochs", "3", "--eval_epochs", "1", "--step", "20",
                         "--lr", "0.001", "--save_maps", "--select", "last", "--tile", "400", "--tile_overlap", "50")
    assert cli.main(flags) == 0
    assert len(list((results / "tiles" / "mvtec_strip" / "images").iterdir())) == 3 * len(tile_boxes(H, W, 400, 50))
    scale = 400 / 64  # original pixels per stitched-map pixel
    maps = np.load(results / "eval" / "mvtec_strip" / "maps.npz")
    good_peaks = [maps[f"strip/test/good/{i:03d}.png"].max() for i in range(2)]
    for i, (cy, cx, radius) in enumerate(DEFECTS):
        heat = maps[f"strip/test/blob/{i:03d}.png"]
        assert heat.shape == (round(H / scale), round(W / scale))  # the whole strip, not a crop
        y, x = np.unravel_index(heat.argmax(), heat.shape)
        # the hottest point lies on the defect, within its radius plus one cell of the finest feature map (layer2,
        # stride 8 at the 64 px input = 50 px of the strip; measured 6-68 px from the centre over seeds 0-2) ...
        assert np.hypot(y * scale - cy, x * scale - cx) <= radius + 8 * scale, (i, y * scale, x * scale)
        assert heat.max() > max(good_peaks)  # ... and is hotter than anything in a good strip
    with open(results / "results.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["selected_by"] == "last"
    assert float(row["image_auroc"]) == 1.0 and float(row["pixel_auroc"]) > 0.99  # stitched grid; 0.9987-0.9993
    # the tile settings are stored with the model: predict scores tile by tile on the same whole-image grid ...
    from datasets.tiling import TiledModel
    from runner.predict import load

    detector = load(results / "models" / "backbone_0" / "mvtec_strip")
    assert isinstance(detector.model, TiledModel) and detector.model.tile == 400
    scores, predicted = detector.predict([str(strip_tree / "data" / "strip" / "test" / "blob" / "000.png")])
    assert predicted.shape == (1, round(H / scale), round(W / scale))
    np.testing.assert_allclose(predicted[0], maps["strip/test/blob/000.png"], atol=1e-5)
    # ... and re-evaluating it with other tile settings is refused
    assert cli.main(flags[:-4] + ["--tile", "200", "--tile_overlap", "50", "--test", "test"]) == 2


def test_val_selection_on_tiles(strip_tree, tmp_path, capsys):
    """``--select val --tile``: whole training images are held out (no tile of them is trained on), cut into tiles
    like the training images, and the validation anomalies are made on those tiles."""
    results = tmp_path / "r"
    flags = _tiled_glass(strip_tree, results, 32, "--meta_epochs", "2", "--step", "2", "--limit", "16",
                         "--select", "val", "--tile", "400", "--tile_overlap", "50")
    assert cli.main(flags) == 0
    per_image = len(tile_boxes(H, W, 400, 50))
    trained = sorted(p.name for p in (results / "tiles" / "mvtec_strip" / "images").iterdir())
    held = sorted(p.name for p in (results / "tiles" / "mvtec_strip" / "validation" / "images").iterdir())
    assert len(trained) == per_image and len(held) == 2 * per_image  # 3 strips: 1 trains, 2 validate
    assert {name.split("_t")[0][6:] for name in trained}.isdisjoint({name.split("_t")[0][6:] for name in held})
    with open(results / "results.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["selected_by"] == f"val (2 good in {2 * per_image} tiles + {2 * per_image} LAS)"
    assert row["best_epoch"] in {"0", "1"}
    assert f"cut into {2 * per_image} tiles" in capsys.readouterr().out


def test_tile_needs_a_method_that_takes_a_tile_whole(tmp_path):
    from common.errors import UserError
    from datasets.tiling import TiledModel

    class Cropping(ColourDistance):
        def __init__(self):
            self.pre = glass_preprocessing("strip", 80, 64)

    with pytest.raises(UserError, match="--resize = --imagesize"):
        TiledModel(Cropping(), 400, 50, tmp_path, [])


def test_keep_aspect_and_tiles_are_model_settings_and_selection_flags_are_checked(tmp_path):
    """--keep_aspect / --tile / --tile_overlap are stored with the model (typed config, MODEL_FIELDS) and reach the
    method's preprocessing; --select / --val_share / --val_anomalies are run options, checked at the CLI edge."""
    from common.errors import UserError
    from glass.config import GlassConfig
    from runner.cli import parse
    from slsg.config import SlsgConfig

    for config_class in (GlassConfig, SlsgConfig):
        assert {"keep_aspect", "tile", "tile_overlap"} <= set(config_class.MODEL_FIELDS)
    invocation = parse(["--keep_aspect", "1", "--tile", "400", "--tile_overlap", "50", "--select", "val"])
    assert (invocation.config.keep_aspect, invocation.config.tile, invocation.config.tile_overlap) == (1, 400, 50)
    assert invocation.options.select == "val" and invocation.options.val_share == 0.2
    assert parse(["--method", "slsg", "--keep_aspect", "1"]).config.keep_aspect == 1
    for bad in (["--tile", "64", "--tile_overlap", "64"], ["--tile_overlap", "8"], ["--val_share", "1.5"],
                ["--val_anomalies", "0"], ["--select", "best"]):
        with pytest.raises(UserError):
            parse(bad)
