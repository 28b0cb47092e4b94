"""The GLASS training loop (glass.md §5.2-5.3), resumable, with per-epoch evaluation and best-epoch selection.

Deviations from the reference (docs/glass.md): the centre is computed from a cached sum of training embeddings
(P is affine, so P(mean) = mean(P); exact up to float rounding, no backbone pass per epoch); every random draw
derives from (seed, epoch[, index]), so resuming gives the same run and any worker count gives the same LAS.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.compiled import maybe_compile
from common.device import avoid_host_sync, pinned, to_device
from common.errors import UserError
from common.finite import weights_finite
from common.selection_key import beats, image_plus_pixel, selection_key
from common.threads import worker_init
from common.tensorboard_log import TrainingLog
from glass import checkpoint as ckpt
from glass.gas import GasConfig
from glass.network import GlassNet
from glass.step import losses


@dataclass(frozen=True)
class TrainConfig:
    meta_epochs: int = 640
    eval_epochs: int = 1
    limit: int = 392
    lr: float = 1e-4
    noise: float = 0.015
    p: float = 0.5
    gas: GasConfig = field(default_factory=GasConfig)
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    center_mean: str = "batch"  # "batch": mean of batch means (reference); "exact": mean over images
    fast: bool = True
    dsc_margin: float = 0.5
    name: str = "glass"
    tensorboard: bool = True  # event files in <checkpoint folder>/tb (--tensorboard 0: none)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class LasDataset(Dataset):
    """Training images with their LAS copy. Items: image, aug (3,H,W), mask_s (h,w), index."""

    def __init__(self, images: Dataset, synthesizer, seed: int, use_fg: bool) -> None:
        self.images, self.synthesizer, self.seed, self.use_fg = images, synthesizer, int(seed), bool(use_fg)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        item = self.images[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        out = self.synthesizer(item["image"], item["fg_mask"] if self.use_fg else None, rng)
        return {"image": item["image"], "aug": out["aug"], "mask_s": out["mask_s"], "index": index}


def _loader(dataset: Dataset, batch_size: int, num_workers: int, order: list[int] | None = None,
            pin_memory: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=order, shuffle=False, num_workers=num_workers,
                      drop_last=False, pin_memory=pin_memory,
                      worker_init_fn=worker_init if num_workers > 0 else None)


class CentreCache:
    """Sum of the (h*w, D) embeddings of all training images, computed once; the per-epoch centre from it.

    The same pass can keep every image's embedding (``cache_bytes`` > 0 and the whole set fits in it): the clean
    training images are deterministic and the backbone is frozen, so training then runs the backbone on the LAS
    images only. The cached rows are the values the backbone gives for those images (bit-identical to embedding
    them in the training batch on CPU, which tests/test_glass_train.py checks).

    The reference's centre is the mean over the batches of a shuffled loader of the batch means of P(E(x)); with a
    short last batch its images weigh more. With S the sum over all images and L the sum over the epoch's last
    batch: centre = P((S - L) / (nb * B) + L / (nb * r)), computing E only for those r < B images per epoch.
    """

    def __init__(self, net: GlassNet, images: Dataset, batch_size: int, num_workers: int, device: torch.device,
                 cache_bytes: int = 0):
        self.net, self.images, self.batch_size, self.device = net, images, int(batch_size), device
        self.num_workers = num_workers
        self.count = len(images)
        self.cache_bytes = int(cache_bytes)
        self._total: torch.Tensor | None = None
        self._mean_image: torch.Tensor | None = None
        self._embeddings: torch.Tensor | None = None  # (count, h*w, D) float32 on the CPU, when it fits

    def _build(self) -> None:
        """One pass over the training images (lazily: a finished run being re-evaluated never needs it)."""
        total = image_sum = None
        for batch in _loader(self.images, self.batch_size, self.num_workers):
            emb, grid = self.net.embed(batch["image"].to(self.device))
            rows = emb.reshape(batch["image"].shape[0], grid[0] * grid[1], -1)
            if total is None and self.count * rows[0].numel() * rows.element_size() <= self.cache_bytes:
                self._embeddings = torch.empty((self.count, *rows.shape[1:]), dtype=rows.dtype)
            if self._embeddings is not None:
                self._embeddings[batch["index"]] = rows.cpu()
            per_image = rows.to(torch.float64).sum(0)
            total = per_image if total is None else total + per_image
            summed = batch["image"].to(torch.float64).sum(0)
            image_sum = summed if image_sum is None else image_sum + summed
        self._total = total
        self._mean_image = (image_sum / self.count).float()

    @property
    def total(self) -> torch.Tensor:
        if self._total is None:
            self._build()
        return self._total

    @property
    def mean_image(self) -> torch.Tensor:
        """The normalised mean training image (3, H, W), for the FFT judge."""
        if self._mean_image is None:
            self._build()
        return self._mean_image

    def embeddings(self, indices: torch.Tensor) -> torch.Tensor | None:
        """Cached (len(indices) * h*w, D) rows of those training images on the device, or None without a cache."""
        if self._embeddings is None:
            return None
        rows = self._embeddings[indices].reshape(-1, self._embeddings.shape[-1])
        return to_device(pinned(rows, self.device), self.device)  # CUDA: asynchronous copy from pinned memory

    def _sum(self, indices: list[int]) -> torch.Tensor:
        if self._embeddings is not None:
            return self._embeddings[indices].to(self.device, torch.float64).sum(0)
        batch = torch.stack([self.images[i]["image"] for i in indices]).to(self.device)
        emb, grid = self.net.embed(batch)
        return emb.reshape(len(indices), grid[0] * grid[1], -1).to(torch.float64).sum(0)

    def embedding_centre(self, mode: str, order: list[int]) -> torch.Tensor:
        n, b = self.count, self.batch_size
        batches = math.ceil(n / b)
        short = n - (batches - 1) * b
        if mode == "exact" or short == b:
            return (self.total / n).float()
        total = self.total  # built first, so that the cache (if any) serves the short batch too
        last = self._sum(order[(batches - 1) * b:])
        return ((total - last) / (batches * b) + last / (batches * short)).float()

    def centre(self, mode: str, order: list[int]) -> torch.Tensor:
        """(h*w, D) centre in the projected space."""
        with torch.no_grad():
            return self.net.project(self.embedding_centre(mode, order))


class ShardedCentreCache(CentreCache):
    """``CentreCache`` of a ``--ddp 1`` run: each rank embeds its share of the images (index mod world = rank) and
    the sums (embeddings, images) are added over the ranks (all_reduce), as are those of the short last batch; the
    centre is the single process's up to float rounding. No embedding cache: a rank's batches change every epoch."""

    def __init__(self, net: GlassNet, images: Dataset, batch_size: int, num_workers: int, device: torch.device,
                 shard):
        super().__init__(net, images, batch_size, num_workers, device, cache_bytes=0)
        self.shard = shard
        if self.batch_size < shard.world:
            raise UserError(f"--ddp 1: --batch_size {self.batch_size} is the global batch, split over {shard.world} "
                            f"ranks; it must be at least the number of ranks")
        if self.count < shard.world:
            raise UserError(f"--ddp 1: {self.count} training image(s) for {shard.world} ranks; use fewer ranks")

    def _build(self) -> None:
        from torch.utils.data import Subset

        mine = list(range(self.shard.rank, self.count, self.shard.world))
        total = image_sum = None
        for batch in _loader(Subset(self.images, mine), self.batch_size, self.num_workers):
            emb, grid = self.net.embed(batch["image"].to(self.device))
            per_image = emb.reshape(batch["image"].shape[0], grid[0] * grid[1], -1).to(torch.float64).sum(0)
            total = per_image if total is None else total + per_image
            summed = batch["image"].to(self.device, torch.float64).sum(0)
            image_sum = summed if image_sum is None else image_sum + summed
        self._total = self.shard.sum(total)
        self._mean_image = (self.shard.sum(image_sum) / self.count).float().cpu()

    def _sum(self, indices: list[int]) -> torch.Tensor:
        _, mine = self.shard.split(indices)
        local = super()._sum(mine) if mine else torch.zeros_like(self.total)
        return self.shard.sum(local)


def _selection_key(metrics: dict) -> float:
    """The reference's key (image + pixel AUROC, NaN parts left out) unless the evaluation carries its own."""
    return selection_key(metrics, image_plus_pixel(metrics))


class Trainer:
    def __init__(self, net: GlassNet, cfg: TrainConfig, device: torch.device, extra_state: dict | None = None,
                 shard=None):
        """``shard`` (a ``common.data_parallel.Shard``): train with ``--ddp 1``, this rank's share of every batch;
        only its rank 0 evaluates and writes checkpoints."""
        self.net, self.cfg, self.device, self.shard = net, cfg, device, shard
        self.writes = shard is None or shard.writes
        self.extra_state = extra_state or {}
        proj = net.projection
        self.proj_opt = torch.optim.Adam(proj.parameters(), cfg.lr, weight_decay=1e-5) if proj is not None else None
        self.dsc_opt = torch.optim.AdamW(net.discriminator.parameters(), lr=2 * cfg.lr)
        self.history: list[dict] = []
        self.best: dict | None = None  # {"epoch", "metrics"}
        self.start_epoch = 0
        self._losses = maybe_compile(losses, "the GLASS discriminator / gradient-ascent step")
        self.tb: TrainingLog | None = None
        self.ddp_heads = None
        if shard is not None:
            from glass import ddp

            self.ddp_heads = ddp.wrap(net.projection, net.discriminator, shard, device, cfg.gas, cfg.p,
                                      cfg.dsc_margin, cfg.fast)

    # --- state -----------------------------------------------------------------------------------------------
    def heads(self) -> dict:
        state = {"discriminator": self.net.discriminator.state_dict()}
        if self.net.projection is not None:
            state["pre_projection"] = self.net.projection.state_dict()
        return state

    def full_state(self, epoch: int) -> dict:
        state = {**self.heads(), "epoch": epoch, "dsc_opt": self.dsc_opt.state_dict(), "best": self.best,
                 "history": self.history, "config": _plain(asdict(self.cfg)), **self.extra_state}
        if self.proj_opt is not None:
            state["proj_opt"] = self.proj_opt.state_dict()
        return state

    def resume(self, folder: Path) -> bool:
        """Continue from ``ckpt.pth``; False when there is nothing to resume."""
        path = Path(folder) / ckpt.LATEST
        if not path.is_file():
            if ckpt.best_files(folder):
                raise UserError(f"{folder} holds a ckpt_best file but no ckpt.pth to resume from; use --test test to "
                                f"evaluate it or --retrain to train again")
            return False
        state = ckpt.read(path)
        if "epoch" not in state or "dsc_opt" not in state:
            raise UserError(f"{path} has no training state (a reference checkpoint?): use --test test to evaluate it "
                            f"or --retrain to train again")
        ckpt.load_heads(state, self.net.projection, self.net.discriminator, path)
        self.dsc_opt.load_state_dict(state["dsc_opt"])
        if self.proj_opt is not None and "proj_opt" in state:
            self.proj_opt.load_state_dict(state["proj_opt"])
        self.best, self.history = state.get("best"), list(state.get("history", []))
        self.start_epoch = int(state["epoch"]) + 1
        return True

    # --- loop --------------------------------------------------------------------------------------------------
    def fit(self, las: LasDataset, centre: CentreCache, folder: Path, evaluate: Callable[[], dict] | None,
            log: Callable[[str], None] = print) -> dict:
        cfg = self.cfg
        folder.mkdir(parents=True, exist_ok=True)
        n = len(las)
        done_iterations = sum(int(h.get("iterations", 0)) for h in self.history)
        self.tb = TrainingLog(folder / "tb", cfg.tensorboard and self.writes, done_iterations)
        for epoch in range(self.start_epoch, cfg.meta_epochs):
            started = time.time()
            centre_order = np.random.default_rng([cfg.seed, epoch, 2]).permutation(n).tolist()
            c = centre.centre(cfg.center_mean, centre_order)
            stats = self._epoch(las, c, epoch, centre)
            self._stop_if_diverged(f"during epoch {epoch}")  # never evaluate or save diverged weights
            record = {"epoch": epoch, **stats}
            if evaluate is not None and self.writes and cfg.eval_epochs > 0 and (epoch + 1) % cfg.eval_epochs == 0:
                metrics = evaluate()
                self.tb.evaluation(epoch, metrics)
                record.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
                best_key = None if self.best is None else _selection_key(self.best["metrics"])
                if beats(metrics, _selection_key(metrics), best_key):
                    self.best = {"epoch": epoch, "metrics": {k: float(v) for k, v in metrics.items()
                                                             if isinstance(v, (int, float))}}
                    ckpt.save_best(folder, {**self.heads(), "epoch": epoch, "metrics": self.best["metrics"],
                                            **self.extra_state}, epoch)
            self.tb.flush()
            record["seconds"] = round(time.time() - started, 3)
            self.history.append(record)
            if self.writes:
                ckpt.save_latest(folder, self.full_state(epoch))
            log(_format(cfg.name, record, cfg.meta_epochs))
        last = self.history[-1]["epoch"] if self.history else None
        if self.best is None and last is not None and self.writes:  # no evaluation ran: the last epoch is the model
            self.best = {"epoch": last, "metrics": {}}
            ckpt.save_best(folder, {**self.heads(), "epoch": last, **self.extra_state}, last)
            ckpt.save_latest(folder, self.full_state(last))
        self.tb.close()
        return {"best_epoch": None if self.best is None else self.best["epoch"], "last_epoch": last,
                "epochs": self.history, "best": self.best}

    def _stop_if_diverged(self, where: str) -> None:
        if not weights_finite(self.net.projection, self.net.discriminator):
            raise UserError(f"{self.cfg.name}: the loss became nan or inf (the weights are no longer finite) "
                            f"{where}; training stopped, the last good checkpoint is kept (try a lower --lr)")

    def _epoch(self, las: LasDataset, c: torch.Tensor, epoch: int, cache: CentreCache | None = None) -> dict:
        cfg, net = self.cfg, self.net
        net.backbone.eval()
        if net.projection is not None:
            net.projection.train()
        net.discriminator.train()
        las.epoch = epoch
        order = np.random.default_rng([cfg.seed, epoch, 1]).permutation(len(las)).tolist()
        noise_gen = torch.Generator().manual_seed(_seed(cfg.seed, epoch, 3))
        seen, sums, iters = 0, {"loss": 0.0, "r_t": 0.0, "r_g": 0.0, "r_f": 0.0}, 0
        deferred = avoid_host_sync(c)  # CUDA: no host synchronisation per iteration; checked once per epoch
        pin = self.device.type == "cuda"
        step_values: list[torch.Tensor] = []  # per iteration (loss, r_t, r_g, r_f), on the device
        if self.shard is None:
            batches = _loader(las, cfg.batch_size, cfg.num_workers, order, pin_memory=pin)
            global_sizes, starts = None, None
        else:  # --ddp 1: this rank's contiguous share of every global batch of --batch_size images
            global_batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
            global_batches = [g for g in global_batches if len(g) >= self.shard.world]  # a tail too short to share
            shares = [self.shard.split(g) for g in global_batches]
            global_sizes, starts = [len(g) for g in global_batches], [start for start, _ in shares]
            batches = DataLoader(las, batch_sampler=[mine for _, mine in shares], num_workers=cfg.num_workers,
                                 pin_memory=pin, worker_init_fn=worker_init if cfg.num_workers > 0 else None)
        for it, batch in enumerate(batches):
            images = to_device(batch["image"], self.device)
            b = images.shape[0]
            true_emb = cache.embeddings(batch["index"]) if cache is not None else None
            if true_emb is None:
                emb, grid = net.embed(torch.cat([images, to_device(batch["aug"], self.device)]))
            else:  # clean embeddings from the cache: the backbone runs on the LAS images only
                emb, grid = net.embed(to_device(batch["aug"], self.device))
            rows = b * grid[0] * grid[1]
            if tuple(batch["mask_s"].shape[-2:]) != tuple(grid):
                raise UserError(f"LAS patch grid {tuple(batch['mask_s'].shape[-2:])} differs from the feature grid "
                                f"{tuple(grid)}: set --downsampling to the stride of the first layer")
            true_emb, fake_emb = (emb[:rows], emb[rows:]) if true_emb is None else (true_emb, emb)
            if global_sizes is None:
                drawn = torch.randn(true_emb.shape, generator=noise_gen)
            else:  # the single process's draw for the whole global batch; this rank's rows of it
                per_image = grid[0] * grid[1]
                drawn = torch.randn((global_sizes[it] * per_image, true_emb.shape[1]), generator=noise_gen)
                drawn = drawn[starts[it] * per_image:(starts[it] + b) * per_image]
            noise = to_device(pinned(drawn * cfg.noise, self.device), self.device)
            if not deferred:  # non-finite weights give non-finite scores, which the loss would reject with a traceback
                self._stop_if_diverged(f"at epoch {epoch}, iteration {it}")
            self.dsc_opt.zero_grad()
            if self.proj_opt is not None:
                self.proj_opt.zero_grad()
            if self.ddp_heads is None:
                out = self._losses(net.projection, net.discriminator, true_emb, fake_emb,
                                   to_device(batch["mask_s"], self.device), c.repeat(b, 1), noise, cfg.gas, cfg.p,
                                   cfg.dsc_margin, cfg.fast)
                to_backward = out.loss
            else:  # out.loss: the global loss (the same on every rank); to_backward: this rank's part x world
                from glass import ddp

                out, to_backward = ddp.step(self.ddp_heads, true_emb, fake_emb,
                                            to_device(batch["mask_s"], self.device), c.repeat(b, 1), noise)
            if not deferred and not torch.isfinite(out.loss):
                raise UserError(f"{cfg.name}: the loss became {float(out.loss.detach())} at epoch {epoch}, iteration {it}; "
                                f"training stopped, the last good checkpoint is kept (try a lower --lr)")
            to_backward.backward()
            if self.proj_opt is not None:
                self.proj_opt.step()
            self.dsc_opt.step()
            iters += 1
            if self.tb is not None:
                self.tb.iteration({"loss": out.loss.detach(), "p_true": out.p_true, "p_fake": out.p_fake,
                                   "r_t": out.r_t.detach(), "r_g": out.r_g.detach(), "r_f": out.r_f.detach()})
            if deferred:
                step_values.append(torch.stack([out.loss.detach(), out.r_t.detach(), out.r_g.detach(),
                                                out.r_f.detach()]).to(torch.float64))
            else:
                for key in sums:
                    sums[key] += float(getattr(out, key).detach()) if key != "loss" else float(out.loss.detach())
            seen += b if global_sizes is None else global_sizes[it]
            if seen > cfg.limit:
                break
        if step_values:  # one synchronisation for the whole epoch
            values = torch.stack(step_values).cpu()
            bad = (~torch.isfinite(values[:, 0])).nonzero()
            if len(bad):
                first = int(bad[0, 0])
                raise UserError(f"{cfg.name}: the loss became {float(values[first, 0])} at epoch {epoch}, iteration "
                                f"{first}; training stopped, the last good checkpoint is kept (try a lower --lr)")
            for index, key in enumerate(("loss", "r_t", "r_g", "r_f")):
                for value in values[:, index].tolist():  # summed in order, as the per-iteration path
                    sums[key] += value
        return {k: v / max(iters, 1) for k, v in sums.items()} | {"iterations": iters}


def _format(name: str, record: dict, total: int) -> str:
    parts = [f"[{name}] epoch {record['epoch'] + 1}/{total}", f"loss {record['loss']:.4f}",
             f"r_t {record['r_t']:.3f}", f"r_g {record['r_g']:.3f}", f"r_f {record['r_f']:.3f}"]
    for key, label in (("image_auroc", "i-AUROC"), ("pixel_auroc", "p-AUROC")):
        if key in record:
            parts.append(f"{label} {100 * record[key]:.2f}")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
