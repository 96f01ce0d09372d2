"""Closed-loop evaluation of a policy on PushT: many seeds, envs in worker processes, mp4 videos.

Protocol (the reference's): test seeds 100000-100049, at most 300 steps, the policy sees the last
``n_obs_steps`` observations (the first one repeated after reset) and its first ``n_action_steps`` actions are
executed before it is asked again; score = mean over seeds of the episode's max reward; success = max
coverage > 0.95. An env that succeeded stops stepping (its max reward is already 1), as the reference's
multi-step wrapper stopped on ``done``.

The episodes of a round (``n_envs``, the policy's batch) are simulated by ``n_workers`` processes
(envs/pusht/vector.py says why not gymnasium's AsyncVectorEnv). Determinism: every episode starts from
reset(seed) and its physics depends only on its actions, so a seed's result does not depend on n_envs or
n_workers (given a policy whose output for an env does not depend on the rest of the batch).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from envs.pusht.geometry import reward_from_coverage
from envs.pusht.protocol import MAX_STEPS, OBS_KEYS, SUCCESS_THRESHOLD, TEST_SEEDS, canonical_obs_type
from envs.pusht.vector import EnvPool


class PushTRunner:
    """Evaluate a policy on PushT seeds; ``run(policy)`` returns the metrics dict.

    Args:
        obs_type: "keypoints" (alias "lowdim"; obs key ``keypoint`` (20,)), "state" (``state`` (5,)) or "image" (``image``
            (3, 96, 96) float in [0, 1] and ``agent_pos`` (2,)).
        n_envs: episodes simulated at once = the policy's batch size (default: all seeds in one round).
        seeds: episode seeds (default 100000-100049).
        max_steps, n_obs_steps, n_action_steps: the protocol above.
        video_seeds: seeds whose rollouts are written as mp4 (video_size px, with the action target drawn)
            to ``video_dir/pusht_seed<seed>.mp4``.
        n_workers: processes that simulate (default: min(CPU count, n_envs)); 0 simulates in this process.
        sampler_seed: seeds the torch.Generator passed to ``policy.predict_action`` each run.
    """

    def __init__(self, obs_type: str = "keypoints", n_envs: int | None = None, seeds=TEST_SEEDS,
                 max_steps: int = MAX_STEPS, n_obs_steps: int = 2, n_action_steps: int = 8, video_seeds=(),
                 video_dir=None, n_workers: int | None = None, video_size: int = 512, fps: int = 10,
                 sampler_seed: int = 0, progress: bool = False):
        try:
            obs_type = canonical_obs_type(obs_type)
        except ValueError as exc:
            raise ValueError(f"PushTRunner: {exc}") from None
        self.seeds = [int(s) for s in seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"PushTRunner: seeds must be a non-empty list of distinct ints, got {seeds!r}")
        missing = set(video_seeds) - set(self.seeds)
        if missing:
            raise ValueError(f"PushTRunner: video_seeds {sorted(missing)} are not among the evaluated seeds")
        if video_seeds and video_dir is None:
            raise ValueError("PushTRunner: video_seeds given but video_dir is None; pass a folder for the mp4s")
        if min(max_steps, n_obs_steps, n_action_steps) < 1:
            raise ValueError("PushTRunner: max_steps, n_obs_steps and n_action_steps must be >= 1")
        self.obs_type = obs_type
        self.n_envs = min(int(n_envs or len(self.seeds)), len(self.seeds))
        self.max_steps, self.n_obs_steps, self.n_action_steps = max_steps, n_obs_steps, n_action_steps
        self.video_seeds = set(int(s) for s in video_seeds)
        self.video_dir = Path(video_dir) if video_dir is not None else None
        self.video_size, self.fps = video_size, fps
        self.n_workers = min(mp.cpu_count(), self.n_envs) if n_workers is None else min(n_workers, self.n_envs)
        self.sampler_seed = sampler_seed
        self.progress = progress
        self._pool = EnvPool(self.n_workers, obs_type, video_size, fps)

    def close(self):
        self._pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ evaluation
    def _obs_dict(self, histories, device):
        """Stack obs histories (n_envs deques of n_obs_steps raw obs) into the contract-3 tensors."""
        if self.obs_type == "image":
            imgs = np.stack([[o["image"] for o in h] for h in histories])  # (B, T, H, W, 3) uint8
            image = torch.from_numpy(imgs).to(device).permute(0, 1, 4, 2, 3).float().div_(255.0).contiguous()
            pos = np.stack([[o["agent_pos"] for o in h] for h in histories]).astype(np.float32)
            return {"image": image, "agent_pos": torch.from_numpy(pos).to(device)}
        key = OBS_KEYS[self.obs_type][0]
        arr = np.stack([list(h) for h in histories]).astype(np.float32)  # (B, T, D)
        return {key: torch.from_numpy(arr).to(device)}

    def run(self, policy) -> dict:
        """Roll out ``policy`` on every seed; returns mean_score, success_rate, per_seed, videos, latency."""
        device = next(iter(policy.parameters()), torch.empty(0)).device if hasattr(policy, "parameters") \
            else torch.device("cpu")
        generator = torch.Generator(device=device).manual_seed(self.sampler_seed)
        per_seed, videos, latencies = [], [], []
        t_start = time.perf_counter()
        rounds = [self.seeds[i: i + self.n_envs] for i in range(0, len(self.seeds), self.n_envs)]
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(self.seeds) * self.max_steps, desc="PushT eval", unit="step")
        for round_seeds in rounds:
            res, lat, vids = self._run_round(policy, round_seeds, device, generator, bar)
            per_seed += res
            latencies += lat
            videos += vids
        if bar is not None:
            bar.close()
        return {
            "mean_score": float(np.mean([r["max_reward"] for r in per_seed])),
            "success_rate": float(np.mean([r["success"] for r in per_seed])),
            "per_seed": per_seed,
            "videos": videos,
            "latency_ms_per_chunk": float(np.mean(latencies) * 1e3) if latencies else math.nan,
            "n_chunks": len(latencies),
            "wall_s": time.perf_counter() - t_start,
        }

    def _split(self, n):
        """Contiguous index blocks of n envs over the groups (one group per worker, or one local group)."""
        return np.array_split(np.arange(n), min(self._pool.n_groups, n))

    def _run_round(self, policy, seeds, device, generator, bar):
        blocks = self._split(len(seeds))
        video_paths = [str(self.video_dir / f"pusht_seed{s}.mp4") if s in self.video_seeds else None for s in seeds]
        answers = self._pool.call("reset", [([seeds[i] for i in b], [video_paths[i] for i in b], self.max_steps)
                                       for b in blocks])
        resets = [x for a in answers for x in a]
        histories = [deque([obs] * self.n_obs_steps, maxlen=self.n_obs_steps) for obs, _ in resets]
        max_cov = np.zeros(len(seeds))  # over steps only: the reference's max is over step rewards
        n_steps = np.zeros(len(seeds), dtype=int)
        active = np.ones(len(seeds), dtype=bool)
        latencies = []
        if hasattr(policy, "reset"):
            policy.reset()
        while active.any():
            obs_dict = self._obs_dict(histories, device)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = policy.predict_action(obs_dict, generator=generator)
            actions = out["action"].detach().to("cpu", torch.float64).numpy()
            latencies.append(time.perf_counter() - t0)
            if actions.ndim != 3 or actions.shape[0] != len(seeds) or actions.shape[2] != 2 \
                    or actions.shape[1] < self.n_action_steps:
                raise ValueError(f"PushTRunner: policy.predict_action must return 'action' of shape "
                                 f"({len(seeds)}, >= n_action_steps={self.n_action_steps}, 2), "
                                 f"got {tuple(actions.shape)}")
            actions = actions[:, : self.n_action_steps]
            if not np.isfinite(actions).all():
                bad = sorted({seeds[i] for i in np.argwhere(~np.isfinite(actions))[:, 0]})
                raise ValueError(f"PushTRunner: policy.predict_action returned NaN or inf actions for seeds {bad}")
            answers = self._pool.call("step_chunk", [(actions[b], active[b], self.n_obs_steps) for b in blocks])
            before = n_steps.sum()
            for i, (obs_list, covs) in enumerate(x for a in answers for x in a):
                histories[i].extend(obs_list)
                n_steps[i] += len(covs)
                if covs:
                    max_cov[i] = max(max_cov[i], max(covs))
                if n_steps[i] >= self.max_steps or max_cov[i] > SUCCESS_THRESHOLD:
                    active[i] = False
            if bar is not None:
                bar.update(int(n_steps.sum() - before))
        videos = [p for a in self._pool.call("finish", [()] * len(blocks)) for p in a]
        results = [{
            "seed": int(s),
            "max_reward": reward_from_coverage(c),  # reward is monotone in coverage
            "max_coverage": float(c),
            "success": bool(c > SUCCESS_THRESHOLD),
            "n_steps": int(n),
        } for s, c, n in zip(seeds, max_cov, n_steps)]
        return results, latencies, videos


def runner_from_config(cfg: dict, video_dir, n_seeds=None, start_seed=None, n_videos=None, n_workers=None,
                       n_envs=None) -> PushTRunner:
    """A PushTRunner for a training config's ``task.env_runner`` (keyword arguments override it): the
    ``robodiff.env_runners`` entry point named ``pusht``, through which ``robodiff train`` / ``eval`` find it."""
    from envs.pusht import protocol

    er = cfg["task"]["env_runner"]

    def pick(arg, key, default):  # argument, else the task config, else the Push-T protocol
        return int(next(v for v in (arg, er.get(key), default) if v is not None))

    n_seeds = pick(n_seeds, "n_seeds", protocol.N_TEST_SEEDS)
    start = pick(start_seed, "start_seed", protocol.TEST_START_SEED)
    seeds = list(range(start, start + n_seeds))
    n_videos = int(n_videos if n_videos is not None else er.get("n_videos", 0))
    return PushTRunner(
        obs_type=er["obs_type"], seeds=seeds, max_steps=pick(None, "max_steps", protocol.MAX_STEPS),
        n_obs_steps=int(cfg["n_obs_steps"]), n_action_steps=int(cfg["n_action_steps"]),
        n_envs=n_envs if n_envs is not None else er.get("n_envs"),
        n_workers=n_workers if n_workers is not None else er.get("n_workers"),
        video_seeds=seeds[:n_videos], video_dir=str(video_dir) if n_videos else None,
    )
