"""Train a diffusion policy: ``robodiff train`` (or ``python scripts/train.py``).

    robodiff train task=pusht_lowdim policy=unet_lowdim [key=value ...]
    torchrun --nproc_per_node=2 scripts/train.py task=... policy=...     # DDP
    robodiff train ... training.resume=true                              # continue a killed run

Groups: task (policies/configs/task/*.yaml), policy (policies/configs/policy/*.yaml); every other key is in
policies/configs/train.yaml (the configs ship inside the installed package). This module is the composition
root: it hands robodiff's training loop the policy builder (policies.build_policy), the task's dataset and the
closed-loop env runner that the task's ``env_runner.env`` names, found through the ``robodiff.env_runners``
entry-point group (envs registers ``pusht``), so neither robodiff nor policies imports an env.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def make_env_runner(cfg: dict, video_dir, **overrides):
    """The env runner the task's ``env_runner.env`` names, built by its ``robodiff.env_runners`` entry point as
    ``factory(cfg, video_dir, **overrides)`` (keyword overrides: n_seeds, start_seed, n_videos, n_workers, n_envs)."""
    from robodiff.training.config import ConfigError

    name = cfg["task"]["env_runner"].get("env")
    found = {ep.name: ep for ep in entry_points(group="robodiff.env_runners")}
    if name not in found:
        raise ConfigError(f"task {cfg['task']['name']!r}: env_runner.env={name!r} names no installed env runner "
                         f"(installed: {sorted(found) or 'none'}; `pip install -e .` registers envs' runners)")
    return found[name].load()(cfg, video_dir, **overrides)


def resolve_obs_sources(spec):
    """``task.dataset.obs_sources`` as the dataset takes it: a ``"module:attr"`` name is imported (a task
    package's derived observations, named by the task config so that no code here knows a task), a mapping
    {obs key: buffer key} passes through."""
    if not isinstance(spec, str):
        return spec
    import importlib

    from robodiff.data.datasets import DatasetError

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise DatasetError(f"task.dataset.obs_sources={spec!r} cannot be imported ({exc}); name a mapping as "
                           f"'package.module:NAME', e.g. 'envs.pusht.dataset:OBS_SOURCES'") from None


def build_dataset(cfg: dict):
    """The task's training dataset, with its derived observation keys resolved from the config."""
    from robodiff.data.task_dataset import dataset_from_config

    return dataset_from_config(cfg, resolve_obs_sources(cfg["task"]["dataset"].get("obs_sources")))


class RolloutCallback:
    """The env-runner callable the training loop calls with the EMA policy; simulation workers are reused."""

    def __init__(self, cfg: dict):
        self.cfg, self.runner = cfg, None

    def __call__(self, policy) -> dict:
        if self.runner is None:
            self.runner = make_env_runner(self.cfg, Path(self.cfg["output_dir"]) / "media")
        policy.eval()
        return self.runner.run(policy)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


def train_policy(overrides) -> "object":
    """Compose the config from ``overrides`` and train; returns robodiff.training.TrainResult."""
    import policies
    from robodiff.training.config import compose_config
    from robodiff.training.trainer import train

    cfg = compose_config(CONFIG_DIR, overrides)
    if cfg["training"].get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg["training"]["num_threads"]))
    tc = cfg["training"]
    rollout = RolloutCallback(cfg) if tc.get("rollout_every") or tc.get("rollout_every_minutes") else None
    try:
        return train(cfg, policies.build_policy, build_dataset(cfg), rollout)
    finally:
        if rollout is not None:
            rollout.close()


def available_configs() -> str:
    """The task and policy names a user can pick (the group files shipped in policies/configs)."""
    names = {g: sorted(f.stem for f in (CONFIG_DIR / g).glob("*.yaml")) for g in ("task", "policy")}
    return f"tasks: {', '.join(names['task'])}\npolicies: {', '.join(names['policy'])}"


def add_arguments(ap) -> None:
    ap.description = (ap.description or "") + "\n" + available_configs()
    ap.add_argument("overrides", nargs="*", metavar="key=value",
                    help="config overrides, e.g. task=pusht_image policy=unet_image training.max_steps=1000")


def run(args) -> int:
    """``robodiff train`` / ``scripts/train.py``: config errors are one line on stderr, exit code 2."""
    from policies import PolicyConfigError
    from robodiff.data.datasets import DatasetError
    from robodiff.data.replay_buffer import ReplayBufferError
    from robodiff.training.checkpoint import CheckpointError
    from robodiff.training.config import ConfigError

    try:
        result = train_policy(args.overrides)
    except (ConfigError, PolicyConfigError, CheckpointError, DatasetError, ReplayBufferError, FileNotFoundError,
            FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {result.step} steps, {result.epoch} epochs -> {result.output_dir}")
    if result.best_checkpoint:
        print(f"best checkpoint: {result.best_checkpoint}")
    print(f"latest checkpoint: {result.latest_checkpoint}")
    score = result.metrics.get("test/mean_score")
    if score is not None:
        print(f"last test/mean_score: {score:.3f}")
    return 0
