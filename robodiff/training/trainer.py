"""The one training loop for every model: diffusion policies, image denoisers, text diffusion LMs.

``train(cfg, build_model, dataset, evaluate)`` trains "a model with ``compute_loss`` on a dataset". It is
handed everything task-specific: ``build_model(cfg, dataset)`` returns the model (a policy fits its normalizer
to the dataset there), ``dataset`` is any map-style torch Dataset, ``evaluate(model)`` is an optional
callable (a closed-loop env runner, a sample-quality metric) returning a dict of numbers. robodiff knows
neither policies/ nor envs/: scripts/train.py composes them.

    for each epoch:  shuffled indices (DistributedSampler: the same order for any world size)
        for each batch:  loss = model.compute_loss(batch) -> AdamW -> cosine/warmup LR -> EMA
        every val_every epochs:      validation loss (fixed noise seed, so epochs compare)
        every rollout_every epochs:  evaluate(ema_model) -> test/<metric> ...
        every checkpoint_every:      latest.ckpt (+ a top-k file when there is a new test score)
    stop at num_epochs, training.max_steps or training.max_minutes (wall time, for CPU demos)

A killed run resumes exactly (``training.resume=true``): the checkpoint carries model, EMA, optimizer,
LR scheduler, all RNG states and the position inside the epoch, and each epoch's order is a function of
(seed, epoch) only. Missing ``training.*`` keys take the values of ``training_defaults.yaml``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from torch.utils.data import Dataset

from robodiff.data.datasets import make_loader
from robodiff.training import distributed
from robodiff.training.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    load_module_state,
    make_checkpoint,
    remove_stale_temp_files,
    rng_state,
    set_rng_state,
)
from robodiff.training.config import ConfigError, with_training_defaults
from robodiff.training.loggers import RunLogger, plot_curves

ModelBuilder = Callable[[dict, Optional[Dataset]], nn.Module]  # (run config, dataset or None at load time)
Evaluator = Callable[[nn.Module], dict]  # EMA model -> {"mean_score": ..., ...}, logged as test/<key>

# top-level config sections that do not define the model or its data: a resumed run may change them
_RUN_ONLY_SECTIONS = ("training", "logging", "output_dir", "device", "name")


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    epoch: int
    latest_checkpoint: Optional[Path]
    best_checkpoint: Optional[Path]
    metrics: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _LossModule(nn.Module):
    """Gives DDP (and torch.compile) a ``forward``: the model's loss is a method, not its forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model.compute_loss(batch)


def _to_device(batch, device):
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """State of one run; ``run()`` trains. Split into methods so each part reads on its own."""

    def __init__(self, cfg: dict, build_model: ModelBuilder, dataset: Dataset, evaluate: Optional[Evaluator] = None):
        cfg = with_training_defaults(cfg)
        self.cfg, self.tc = cfg, cfg["training"]
        self.device = resolve_device(cfg.get("device", "auto"))
        self.dist = distributed.setup(str(self.device))
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.out = Path(cfg["output_dir"])
        self.ckpt_dir = self.out / "checkpoints"
        self.evaluate = evaluate
        self._check_output_dir()
        # rank-dependent seed: every rank draws its own diffusion noise; the data order uses cfg seed only
        _seed_everything(int(cfg["seed"]) + self.dist.rank)

        self.dataset = dataset
        get_val = getattr(dataset, "get_validation_dataset", None)
        self.val_dataset = get_val() if get_val is not None else None
        self.model = build_model(cfg, dataset).to(self.device)
        if not callable(getattr(self.model, "compute_loss", None)):
            raise TypeError(f"build_model returned a {type(self.model).__name__} without compute_loss(batch)")

        world, bs = self.dist.world_size, int(self.tc["batch_size"])
        if bs % world:
            raise ConfigError(f"training.batch_size={bs} must be divisible by the number of processes ({world})")
        self.local_bs = bs // world
        n_rank = math.ceil(len(self.dataset) / world)
        self.steps_per_epoch = n_rank // self.local_bs
        if self.steps_per_epoch == 0:
            raise ConfigError(f"training.batch_size={bs} is larger than the {len(self.dataset)} training samples; "
                             f"lower training.batch_size")
        self.total_steps = int(self.tc["num_epochs"]) * self.steps_per_epoch
        if self.tc.get("max_steps"):
            self.total_steps = min(self.total_steps, int(self.tc["max_steps"]))

        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=float(self.tc["lr"]),
                                           betas=tuple(self.tc["betas"]), eps=float(self.tc.get("eps", 1e-8)),
                                           weight_decay=float(self.tc["weight_decay"]))
        from diffusers.optimization import get_scheduler

        self.lr_scheduler = get_scheduler(self.tc["lr_scheduler"], self.optimizer,
                                          num_warmup_steps=int(self.tc["lr_warmup_steps"]),
                                          num_training_steps=int(self.tc.get("lr_schedule_steps") or self.total_steps))
        self.ema_model, self.ema = None, None
        if self.tc["ema"]["enabled"] and self.dist.is_main:
            self._make_ema()

        loss_module: nn.Module = _LossModule(self.model)
        if self.dist.enabled:
            loss_module = nn.parallel.DistributedDataParallel(
                loss_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(self.tc.get("find_unused_parameters", False)))
        if self.tc.get("compile"):
            loss_module = torch.compile(loss_module)
        self.loss_module = loss_module

        self.step = self.epoch = self.batch_in_epoch = 0
        self.elapsed_s = self.last_rollout_s = 0.0
        self.topk: list = []  # [[score, path], ...] best first
        self.metrics: dict = {}
        if self.tc.get("resume") and (self.ckpt_dir / "latest.ckpt").exists():
            self._resume(self.ckpt_dir / "latest.ckpt")
        self.logger = None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg, indent=2))
            log_cfg = cfg.get("logging", {})
            self.logger = RunLogger(self.out, config=cfg, tensorboard=log_cfg.get("tensorboard", True),
                                    wandb_cfg=log_cfg.get("wandb"), resume_step=self.step)
            n_params = sum(p.numel() for p in self.model.parameters())
            n_val = len(self.val_dataset) if self.val_dataset is not None else 0
            print(f"{cfg.get('name', 'run')}: {len(self.dataset)} training samples, {n_val} "
                  f"validation; {n_params / 1e6:.2f}M parameters on {self.device}; {self.steps_per_epoch} steps "
                  f"per epoch of batch {bs} x {world} process(es); output {self.out}")

    # ------------------------------------------------------------------ setup helpers
    def _check_output_dir(self) -> None:
        latest = self.ckpt_dir / "latest.ckpt"
        if latest.exists() and not self.tc.get("resume") and not self.tc.get("overwrite"):
            raise FileExistsError(
                f"{self.out} already holds a run ({latest}); continue it with training.resume=true, "
                f"choose another output_dir=..., or replace it with training.overwrite=true")
        if latest.exists() and self.tc.get("overwrite") and not self.tc.get("resume") and self.dist.is_main:
            shutil.rmtree(self.ckpt_dir)
            for name in ("logs.jsonl", "tensorboard"):
                p = self.out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        distributed.barrier(self.dist)

    def _make_ema(self) -> None:
        from diffusers.training_utils import EMAModel

        e = self.tc["ema"]
        self.ema_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.ema = EMAModel(self.model.parameters(), decay=float(e.get("max_value", 0.9999)),
                            min_decay=float(e.get("min_value", 0.0)), use_ema_warmup=True,
                            inv_gamma=float(e.get("inv_gamma", 1.0)), power=float(e.get("power", 0.75)),
                            foreach=True)
        # Point diffusers' shadow copy at the EMA model's own parameter storage: ema.step() then updates
        # ema_model in place, with no third copy of the weights and no copy_to() before each rollout.
        self.ema.shadow_params = [p.data for p in self.ema_model.parameters()]

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        must_match = self.tc.get("resume_must_match") or sorted(
            k for k in set(self.cfg) | set(ckpt["config"]) if k not in _RUN_ONLY_SECTIONS)
        for part in must_match:
            if ckpt["config"].get(part) != self.cfg.get(part):
                raise CheckpointError(
                    f"training.resume=true but {path} was trained with a different {part!r} config "
                    f"(stored {json.dumps(ckpt['config'].get(part))[:300]}); resume with the same config "
                    f"or start a new run in another output_dir")
        load_module_state(self.model, ckpt["model"], path)
        if self.ema is not None:
            if ckpt.get("ema_model") is None:
                raise CheckpointError(f"{path} has no EMA weights but training.ema.enabled=true")
            load_module_state(self.ema_model, ckpt["ema_model"], path, "EMA model")
            self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        prog = ckpt["progress"]
        self.step, self.epoch, self.batch_in_epoch = prog["step"], prog["epoch"], prog["batch_in_epoch"]
        self.elapsed_s, self.last_rollout_s = prog["elapsed_s"], prog["last_rollout_s"]
        self.topk = [list(x) for x in ckpt.get("topk", [])]
        self.metrics = dict(ckpt.get("metrics", {}))
        rngs = ckpt["rng"]
        set_rng_state(rngs[self.dist.rank] if self.dist.rank < len(rngs) else rngs[0])
        if self.dist.is_main:
            print(f"resumed from {path} at step {self.step} (epoch {self.epoch}, batch {self.batch_in_epoch})")

    # ------------------------------------------------------------------ checkpoints
    def _gather_rng(self) -> list:
        """RNG state of every rank (rank 0 writes them all, so each rank resumes its own stream)."""
        state = rng_state()
        if not self.dist.enabled:
            return [state]
        out = [None] * self.dist.world_size
        torch.distributed.all_gather_object(out, state)
        return out

    def save_checkpoint(self, new_score: Optional[float] = None) -> Optional[Path]:
        """latest.ckpt (atomic); with a test score that makes the top k, also a top-k file (hard link)."""
        rngs = self._gather_rng()  # collective: every rank calls save_checkpoint
        if not self.dist.is_main:
            distributed.barrier(self.dist)
            return None
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.ckpt_dir)
        k, name, evicted = int(self.tc["checkpoint"]["top_k"]), None, []
        if new_score is not None and k > 0 and (len(self.topk) < k or new_score > self.topk[-1][0]):
            monitor = self.tc["checkpoint"]["monitor"].replace("/", "_")
            name = f"epoch={self.epoch:04d}-step={self.step:07d}-{monitor}={new_score:.3f}.ckpt"
            ranked = sorted(self.topk + [[float(new_score), name]], key=lambda x: -x[0])
            self.topk, evicted = ranked[:k], ranked[k:]
        ckpt = make_checkpoint(
            self.cfg,
            model=self.model.state_dict(),
            ema_model=self.ema_model.state_dict() if self.ema_model is not None else None,
            ema={k: v for k, v in self.ema.state_dict().items() if k != "shadow_params"} if self.ema else None,
            optimizer=self.optimizer.state_dict(),
            lr_scheduler=self.lr_scheduler.state_dict(),
            rng=rngs,
            progress={"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                      "elapsed_s": self.elapsed_s, "last_rollout_s": self.last_rollout_s},
            topk=self.topk,
            metrics={k: v for k, v in self.metrics.items() if isinstance(v, (int, float))},
        )
        latest = atomic_save(ckpt, self.ckpt_dir / "latest.ckpt")
        if name is not None:
            tmp = self.ckpt_dir / f".{name}.tmp"
            try:  # a hard link shares the bytes just written; moved into place atomically
                tmp.unlink(missing_ok=True)
                os.link(latest, tmp)
            except OSError:
                shutil.copyfile(latest, tmp)
            os.replace(tmp, self.ckpt_dir / name)
            for _, old in evicted:
                (self.ckpt_dir / old).unlink(missing_ok=True)
        distributed.barrier(self.dist)
        return latest

    # ------------------------------------------------------------------ evaluation
    @property
    def eval_model(self) -> nn.Module:
        return self.ema_model if self.ema_model is not None else self.model

    @torch.no_grad()
    def validation_loss(self) -> Optional[float]:
        if self.val_dataset is None or len(self.val_dataset) == 0:
            return None
        self.model.eval()
        losses = []
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(int(self.cfg["seed"]))  # same noise every time: epochs are comparable
            loader = make_loader(self.val_dataset, self.local_bs, shuffle=False)
            for i, batch in enumerate(loader):
                if i >= int(self.tc.get("max_val_steps") or 1 << 30):
                    break
                with self._autocast():
                    losses.append(float(self.model.compute_loss(_to_device(batch, self.device))))
        self.model.train()
        return float(np.mean(losses)) if losses else None

    def rollout(self) -> Optional[dict]:
        if self.evaluate is None:
            return None
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            result = self.evaluate(self.eval_model)
        out = {f"test/{k}": v for k, v in result.items() if isinstance(v, (int, float))}
        return out

    # ------------------------------------------------------------------ the loop
    def _autocast(self):
        if self.tc.get("mixed_precision") == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _epoch_indices(self, epoch: int) -> list:
        sampler = DistributedSampler(self.dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=True, seed=int(self.cfg["seed"]), drop_last=False)
        sampler.set_epoch(epoch)
        return list(sampler)[: self.steps_per_epoch * self.local_bs]

    def _out_of_time(self, t0: float) -> bool:
        max_min = self.tc.get("max_minutes")
        up = bool(max_min) and (self.elapsed_s + time.monotonic() - t0) >= 60.0 * float(max_min)
        return distributed.broadcast_flag(up, self.dist, self.device)

    def _rollout_due(self, end_of_epoch: bool, final: bool) -> bool:
        """Every ``rollout_every`` epochs and/or ``rollout_every_minutes`` of wall time (at an epoch end)."""
        every, minutes = self.tc.get("rollout_every"), self.tc.get("rollout_every_minutes")
        at_end = final and self.tc.get("rollout_at_end", True)
        by_epoch = bool(every) and (at_end or (end_of_epoch and self.epoch % int(every) == 0))
        by_time = bool(minutes) and (at_end or (end_of_epoch and
                                                self.elapsed_s - self.last_rollout_s >= 60.0 * float(minutes)))
        return distributed.broadcast_flag(by_epoch or by_time, self.dist, self.device)  # rank 0's clock decides

    def _evaluate_and_save(self, end_of_epoch: bool, final: bool) -> None:
        """Validation, rollout and checkpoint at an epoch boundary (or at the final step)."""
        def due(every) -> bool:  # depends on epoch/final only, so every rank agrees
            return bool(every) and (final or (end_of_epoch and self.epoch % int(every) == 0))

        rollout_due = self._rollout_due(end_of_epoch, final)
        row, score = {"epoch": self.epoch}, None
        if self.dist.is_main and due(self.tc.get("val_every", 1)):
            val = self.validation_loss()
            if val is not None:
                row["val/loss"] = val
        if self.dist.is_main and rollout_due:
            res = self.rollout()
            if res:
                row.update(res)
                score = res.get(self.tc["checkpoint"]["monitor"])
        if rollout_due:
            self.last_rollout_s = self.elapsed_s
        if self.dist.is_main and len(row) > 1:
            self.metrics.update(row)
            self.logger.log(row, self.step)
        # saving is collective, so decide it from what every rank knows (not from rank 0's score)
        if final or rollout_due or due(self.tc["checkpoint"].get("every", 1)):
            self.save_checkpoint(new_score=score)

    def run(self) -> TrainResult:
        self.model.train()
        t0 = time.monotonic()
        # a wall-time-bounded run has no known end step: show count and rate, not a meaningless ETA
        timed = bool(self.tc.get("max_minutes")) and not self.tc.get("max_steps")
        bar = tqdm(total=None if timed else self.total_steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not self.dist.is_main or not self.tc.get("progress", True))
        ckpt_every_steps = int(self.tc["checkpoint"].get("every_steps") or 0)
        stop = self.step >= self.total_steps or self.epoch >= int(self.tc["num_epochs"]) or self._out_of_time(t0)
        while not stop:
            indices = self._epoch_indices(self.epoch)
            loader = make_loader(self.dataset, self.local_bs, sampler=indices[self.batch_in_epoch * self.local_bs:],
                                 num_workers=int(self.tc.get("num_workers", 0)), drop_last=True)
            for batch in loader:
                batch = _to_device(batch, self.device)
                with self._autocast():
                    loss = self.loss_module(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss is {loss.item()} at step {self.step}; lower training.lr "
                                             f"or enable training.grad_clip (latest good checkpoint: {self.ckpt_dir})")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.tc.get("grad_clip"):
                    nn.utils.clip_grad_norm_(self.model.parameters(), float(self.tc["grad_clip"]))
                self.optimizer.step()
                self.lr_scheduler.step()
                if self.ema is not None:
                    self.ema.step(self.model.parameters())
                self.step += 1
                self.batch_in_epoch += 1
                loss_value = distributed.mean_across(float(loss.detach()), self.dist, self.device)
                if self.dist.is_main:
                    lr = self.lr_scheduler.get_last_lr()[0]
                    if self.step % int(self.tc.get("log_every", 1)) == 0:
                        self.logger.log({"train/loss": loss_value, "lr": lr, "epoch": self.epoch,
                                         "elapsed_s": self.elapsed_s + time.monotonic() - t0}, self.step)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}", epoch=self.epoch, refresh=False)
                out_of_time = self._out_of_time(t0)
                if self.step >= self.total_steps or out_of_time:
                    stop = True
                    break
                if ckpt_every_steps and self.step % ckpt_every_steps == 0:
                    self.save_checkpoint()
            end_of_epoch = self.batch_in_epoch >= self.steps_per_epoch
            if end_of_epoch:
                self.epoch += 1
                self.batch_in_epoch = 0
                stop = stop or self.epoch >= int(self.tc["num_epochs"])
            now = time.monotonic()
            self.elapsed_s += now - t0
            t0 = now
            self._evaluate_and_save(end_of_epoch, final=stop)
        bar.close()
        return self._finish()

    def _finish(self) -> TrainResult:
        best = None
        if self.dist.is_main:
            self.logger.close()
            plot_curves(self.out / "logs.jsonl", self.out / "curves.png", self.tc["checkpoint"]["monitor"])
            best = self.ckpt_dir / self.topk[0][1] if self.topk else None
        distributed.teardown(self.dist)
        latest = self.ckpt_dir / "latest.ckpt"
        return TrainResult(self.out, self.step, self.epoch, latest if latest.exists() else None, best, self.metrics)


def train(cfg: dict, build_model: ModelBuilder, dataset: Dataset, evaluate: Optional[Evaluator] = None) -> TrainResult:
    """Train ``build_model(cfg, dataset)`` on ``dataset``; returns where checkpoints and logs were written."""
    return Trainer(cfg, build_model, dataset, evaluate).run()
