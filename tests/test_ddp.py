"""``--ddp 1`` (CPU, gloo, 2 processes): the centre and the step reduced over the ranks equal one process's on the
same data, and torchrun with 2 ranks trains one demo class end to end as well as one process does, writing one
results row and one checkpoint set, and resumes from the same checkpoint on every rank."""
from __future__ import annotations

import copy
import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
CLASS = "tile"
EPOCHS = 4

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the reductions, in 2 spawned processes ------------------------------------------------------------------

class _StubNet:
    """embed: an image (3, 4, 4) -> its 16 pixels as rows of width 3; project: a fixed affine map."""

    def embed(self, images):
        return images.permute(0, 2, 3, 1).reshape(-1, 3), (4, 4)

    def project(self, rows):
        weight = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10
        return rows @ weight.T + 1


class _Images(torch.utils.data.Dataset):
    def __init__(self, count: int):
        self.data = torch.randn(count, 3, 4, 4, generator=torch.Generator().manual_seed(5))

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return {"image": self.data[index], "index": index}


def _step_inputs(n_images: int):
    from glass.model import Discriminator, Projection

    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    proj, disc = Projection(8, 8), Discriminator(8, 2, 6)
    hw = 4
    true = torch.randn(n_images * hw, 8, generator=gen)
    fake = true + 0.5 * torch.randn(n_images * hw, 8, generator=gen)
    mask = (torch.rand(n_images, 2, 2, generator=gen) > 0.6).float()
    centre = torch.randn(hw, 8, generator=gen).repeat(n_images, 1)
    noise = 0.1 * torch.randn(n_images * hw, 8, generator=gen)
    return proj, disc, true, fake, mask, centre, noise


def _one_step(shard, svd: int, fast: bool) -> dict:
    """One step on a batch of 5 images: in one process vs a 3 + 2 split over the ranks (DDP's gradient average)."""
    from common.data_parallel import SyncBatchNorm1d
    from glass.ddp import losses_shared
    from glass.gas import GasConfig
    from glass.step import losses

    results = {}
    cfg = GasConfig(step=5, radius=0.75, mining=1, svd=svd)
    proj, disc, true, fake, mask, centre, noise = _step_inputs(5)
    ref_proj, ref_disc = copy.deepcopy(proj), copy.deepcopy(disc)
    ref = losses(ref_proj, ref_disc, true, fake, mask, centre, noise, cfg, 0.5, fast=False)
    ref.loss.backward()
    start, mine = shard.split(list(range(5)))
    rows = slice(start * 4, (start + len(mine)) * 4)
    SyncBatchNorm1d.convert(disc, shard)
    step, part = losses_shared(proj, disc, true[rows], fake[rows], mask[start:start + len(mine)], centre[rows],
                              noise[rows], cfg, 0.5, 0.5, shard, fast)
    part.backward()
    grads = [p.grad for p in [*proj.parameters(), *disc.parameters()]]
    for grad in grads:
        dist.all_reduce(grad)
        grad /= shard.world  # what DistributedDataParallel does
    ref_grads = [p.grad for p in [*ref_proj.parameters(), *ref_disc.parameters()]]
    results["loss"] = abs(float(step.loss) - float(ref.loss.detach()))
    results["r_t"] = abs(float(step.r_t) - float(ref.r_t))
    # relative to the largest gradient: the biases before BatchNorm have a true gradient of 0 (rounding noise)
    scale = max(float(b.abs().max()) for b in ref_grads)
    results["grad"] = max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads)) / scale
    results["running_var"] = float((disc.body[0][1].running_var - ref_disc.body[0][1].running_var).abs().max())
    return results


def _worker(rank: int, world: int, store: str, out: str) -> None:
    from common.data_parallel import Shard
    from glass.trainer import CentreCache, ShardedCentreCache

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    shard = Shard(rank, world, dist.new_group())
    images = _Images(7)  # batch 3: a short last batch of 1 image
    order = np.random.default_rng(1).permutation(7).tolist()
    results = {}
    for mode in ("batch", "exact"):
        single = CentreCache(_StubNet(), images, 3, 0, torch.device("cpu")).centre(mode, order)
        reduced = ShardedCentreCache(_StubNet(), images, 3, 0, torch.device("cpu"), shard).centre(mode, order)
        results[f"centre_{mode}"] = float((single - reduced).abs().max())
    for svd in (0, 1):  # manifold and hypersphere GAS; the reference order and the fast ascent over the ranks
        for fast in (False, True):
            results.update({f"{k}_svd{svd}_{fast}": v for k, v in _one_step(shard, svd, fast).items()})
    torch.save(results, f"{out}.{rank}")
    dist.destroy_process_group()


@needs_gloo
def test_reduced_centre_and_step_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2, join=True)
    for rank in range(2):
        results = torch.load(tmp_path / f"out.{rank}")
        assert results["centre_batch"] < 1e-5 and results["centre_exact"] < 1e-5, results
        for key in ("svd0_False", "svd0_True", "svd1_False", "svd1_True"):
            assert results[f"loss_{key}"] < 1e-5 and results[f"r_t_{key}"] == 0, results
            assert results[f"grad_{key}"] < 1e-5, results
            assert results[f"running_var_{key}"] < 1e-5, results


# --- end to end with torchrun ---------------------------------------------------------------------------------

def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _flags(demo, results: Path) -> list[str]:
    return ["--method", "glass", "--dataset", "mvtec", "--datapath", str(demo.datapath), "--augpath",
            str(demo.augpath), "--results_path", str(results), "--gpu", "-1", "--seed", "0", "--classes", CLASS,
            "-b", "efficientnet_lite0", "-le", "layer2", "-le", "layer3", "--pretrain_embed_dimension", "64",
            "--target_embed_dimension", "64", "--dsc_hidden", "64", "--meta_epochs", str(EPOCHS), "--step", "5",
            "--limit", "16", "--resize", "64", "--imagesize", "64", "--batch_size", "4", "--num_workers", "0",
            "--fg", "0", "--distribution", "2", "--heatmaps", "0", "--threads", "1"]


def _rows(results: Path) -> dict[str, dict]:
    with open(results / "results.csv", newline="") as handle:
        return {row.pop("Row Names"): row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from datasets.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("ddp") / "demo", size=64, n_train=16, n_test_good=6,
                         n_per_defect=2, classes=[CLASS])


def _two_ranks(demo, results: Path, epochs: int) -> subprocess.CompletedProcess:
    flags = [*_flags(demo, results), "--ddp", "1", "--meta_epochs", str(epochs)]
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(_free_port()), str(REPO / "main.py"), *flags],
                          env=_env(), capture_output=True, text=True, timeout=600)


@needs_gloo
def test_two_ranks_train_one_class_as_well_as_one_process(demo, tmp_path):
    one = tmp_path / "one"
    subprocess.run([sys.executable, str(REPO / "main.py"), *_flags(demo, one)], check=True, env=_env(),
                   capture_output=True, timeout=600)
    two = tmp_path / "two"
    first = _two_ranks(demo, two, EPOCHS // 2)  # interrupted half way, as it were
    assert first.returncode == 0, first.stderr[-3000:]
    run = _two_ranks(demo, two, EPOCHS)  # every rank resumes from the same ckpt.pth
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("resuming from") == 2, run.stdout[-3000:]
    rows_one, rows_two = _rows(one), _rows(two)
    assert set(rows_two) == {f"mvtec_{CLASS}", "Mean"}  # one results row
    image_one = float(rows_one[f"mvtec_{CLASS}"]["image_auroc"])
    image_two = float(rows_two[f"mvtec_{CLASS}"]["image_auroc"])
    assert image_one > 0.7 and image_two > 0.7, (image_one, image_two)  # well above chance (0.5)
    assert abs(image_one - image_two) <= 0.05, (image_one, image_two)
    # one checkpoint set, written by rank 0
    models = two / "models" / "backbone_0"
    assert [p.name for p in models.iterdir()] == [f"mvtec_{CLASS}"]
    files = sorted(p.name for p in (models / f"mvtec_{CLASS}").glob("*.pth"))
    assert len(files) == 2 and "ckpt.pth" in files and files[1].startswith("ckpt_best_"), files
    epoch_lines = [line for line in run.stdout.splitlines() if f"[mvtec_{CLASS}] epoch " in line]
    assert len(epoch_lines) == 2 * (EPOCHS - EPOCHS // 2)  # one line per rank per epoch
    assert sum("AUROC" in line for line in epoch_lines) == EPOCHS - EPOCHS // 2  # rank 0 alone evaluates
    assert "1 unit(s) run" in run.stdout


def test_ddp_with_slsg_is_refused(tmp_path):
    sys.path.insert(0, str(REPO))
    from runner.cli import main

    assert main(["--method", "slsg", "--datapath", str(tmp_path), "--ddp", "1"]) == 2
