#!/usr/bin/env python
"""Train a diffusion policy.

    python scripts/train.py task=pusht_lowdim policy=unet_lowdim [key=value ...]
    torchrun --nproc_per_node=2 scripts/train.py task=... policy=...     # DDP
    python scripts/train.py ... training.resume=true                      # continue a killed run

Groups: task (scripts/config/task/*.yaml), policy (scripts/config/policy/*.yaml); every other key is in
scripts/config/train.yaml. This script is the composition root: it hands robodiff's training loop the policy
builder (policies.build_policy), the task's dataset and a closed-loop env runner (envs.pusht.PushTRunner), which robodiff itself
never imports.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONFIG_DIR = REPO / "scripts" / "config"


def make_pusht_runner(cfg: dict, video_dir, n_seeds=None, start_seed=None, n_videos=None, n_workers=None,
                      n_envs=None):
    """A PushTRunner for the task's env_runner config (arguments override the config)."""
    from envs.pusht.runner import PushTRunner

    er = cfg["task"]["env_runner"]
    if er.get("env") != "pusht":
        raise ValueError(f"task {cfg['task']['name']!r}: env_runner.env={er.get('env')!r}; only 'pusht' is available")
    n_seeds = int(n_seeds if n_seeds is not None else er["n_seeds"])
    start = int(start_seed if start_seed is not None else er["start_seed"])
    seeds = list(range(start, start + n_seeds))
    n_videos = int(n_videos if n_videos is not None else er.get("n_videos", 0))
    return PushTRunner(
        obs_type=er["obs_type"], seeds=seeds, max_steps=int(er["max_steps"]),
        n_obs_steps=int(cfg["n_obs_steps"]), n_action_steps=int(cfg["n_action_steps"]),
        n_envs=n_envs if n_envs is not None else er.get("n_envs"),
        n_workers=n_workers if n_workers is not None else er.get("n_workers"),
        video_seeds=seeds[:n_videos], video_dir=str(video_dir) if n_videos else None,
    )


class RolloutCallback:
    """The env-runner callable the training loop calls with the EMA policy; simulation workers are reused."""

    def __init__(self, cfg: dict):
        self.cfg, self.runner = cfg, None

    def __call__(self, policy) -> dict:
        if self.runner is None:
            self.runner = make_pusht_runner(self.cfg, Path(self.cfg["output_dir"]) / "media")
        policy.eval()
        return self.runner.run(policy)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


def run(overrides) -> "object":
    """Compose the config from ``overrides`` and train; returns robodiff.training.TrainResult."""
    import policies
    from robodiff.data.task_dataset import dataset_from_config
    from robodiff.training.config import compose_config
    from robodiff.training.trainer import train

    cfg = compose_config(CONFIG_DIR, overrides)
    if cfg["training"].get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg["training"]["num_threads"]))
    tc = cfg["training"]
    rollout = RolloutCallback(cfg) if tc.get("rollout_every") or tc.get("rollout_every_minutes") else None
    try:
        return train(cfg, policies.build_policy, dataset_from_config(cfg), rollout)
    finally:
        if rollout is not None:
            rollout.close()


def main(argv=None) -> int:
    from policies import PolicyConfigError
    from robodiff.data.datasets import DatasetError
    from robodiff.data.replay_buffer import ReplayBufferError
    from robodiff.training.checkpoint import CheckpointError
    from robodiff.training.config import ConfigError

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        result = run(argv)
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


if __name__ == "__main__":
    sys.exit(main())
