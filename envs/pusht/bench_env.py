"""PushT simulation speed: env steps per second for state and 96x96 image observations.

Runs envs/pusht and, with --peer-python, gym-pusht (the reference env's gymnasium port, which pins pymunk < 7 and
so lives in a separate venv) in the same run, on the same action stream: uniform random targets over the table,
so the agent sweeps through the block and contacts are frequent. Each measure is the median of --repeats runs.

    robodiff bench env [--steps 3000] [--peer-python /tmp/gympusht_venv/bin/python] [--runner]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time


import numpy as np


# Runs in either interpreter: `make_env(obs_type)` returns a gymnasium env; prints {obs_type: [steps/s, ...]}.
TIMER = r"""
import json, sys, time
import numpy as np

def bench(make_env, obs_types, steps, repeats, angle_first, episode_len=300):
    rng = np.random.default_rng(0)
    out = {}
    for obs_type in obs_types:
        n = steps if obs_type == "state" else max(steps // 5, 100)
        actions = rng.uniform(50, 462, size=(n, 2))
        env = make_env(obs_type)
        # Both envs start each episode from the same states (their seeded resets differ across versions).
        # gym-pusht places a given state position first, then angle (turning about the centre of gravity, 45 px
        # along the stem); envs/pusht places angle first, so it gets the origin that placement ends at.
        starts = np.array([[*rng.integers(50, 450, 2), *rng.integers(100, 400, 2), rng.uniform(0, 6.28)]
                           for _ in range(n // episode_len + 1)], dtype=float)
        if angle_first:
            starts[:, 2] += 45 * np.sin(starts[:, 4])
            starts[:, 3] += 45 * (1 - np.cos(starts[:, 4]))
        rates, contacts = [], 0
        for _ in range(repeats):
            t = time.perf_counter()
            for i, a in enumerate(actions):
                if i % episode_len == 0:
                    env.reset(options={"reset_to_state": starts[i // episode_len]})
                info = env.step(a)[-1]
                contacts += info.get("n_contacts", 0) > 0
            rates.append(n / (time.perf_counter() - t))
        out[obs_type] = {"steps_per_s": float(np.median(rates)), "contact_frac": contacts / (n * repeats)}
    return out
"""

PEER = TIMER + r"""
import gymnasium as gym
import gym_pusht  # noqa: F401
names = {"state": "state", "image": "pixels"}
make = lambda ot: gym.make("gym_pusht/PushT-v0", obs_type=names[ot], disable_env_checker=True).unwrapped
print(json.dumps(bench(make, sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), angle_first=False)))
"""


def coverage_cost_us(n=2000) -> float:
    """Mean time of one exact coverage computation for poses near the goal (where shapely is needed)."""
    from envs.pusht.geometry import coverage

    rng = np.random.default_rng(0)
    poses = np.column_stack([rng.uniform(200, 312, (n, 2)), rng.uniform(0, 6.28, n)])
    t = time.perf_counter()
    for p in poses:
        coverage(p)
    return (time.perf_counter() - t) / n * 1e6


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--steps", type=int, default=3000, help="steps per state run (image runs: steps/5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-python", default=None, help="python of a venv with gym-pusht installed")
    ap.add_argument("--runner", action="store_true", help="also time PushTRunner's protocol (50 seeds x 300 steps)")


def run(args) -> int:
    obs_types = ["state", "image"]

    scope: dict = {}
    exec(TIMER, scope)  # the same timing code for both envs
    from envs.pusht import PushTEnv

    def make(obs_type):
        return PushTEnv(obs_type=obs_type, max_episode_steps=None, terminate_on_success=False)

    ours = scope["bench"](make, obs_types, args.steps, args.repeats, angle_first=True)
    peer = None
    if args.peer_python:
        res = subprocess.run([args.peer_python, "-c", PEER, ",".join(obs_types), str(args.steps), str(args.repeats)],
                             capture_output=True, text=True, check=True)
        peer = json.loads(res.stdout.strip().splitlines()[-1])

    print("| obs | robodiff steps/s | gym-pusht steps/s | ratio | steps with contact (ours / peer) |")
    print("|---|---|---|---|---|")
    for ot in obs_types:
        o = ours[ot]
        if peer:
            p = peer[ot]
            print(f"| {ot} | {o['steps_per_s']:,.0f} | {p['steps_per_s']:,.0f} | "
                  f"{o['steps_per_s'] / p['steps_per_s']:.1f}x | {o['contact_frac']:.0%} / {p['contact_frac']:.0%} |")
        else:
            print(f"| {ot} | {o['steps_per_s']:,.0f} | (not measured; quoted ~1,600 state / ~270 image) | | "
                  f"{o['contact_frac']:.0%} |")
    print(f"\nexact coverage near the goal (shapely, prepared goal): {coverage_cost_us():.1f} us per call")
    if args.runner:
        print("\n| PushTRunner, 50 seeds x 300 steps, policy = hold position (no inference cost) | wall s |")
        print("|---|---|")
        for obs_type in ("keypoints", "image"):
            for n_workers in (0, 2):
                print(f"| {obs_type}, n_envs=50, n_workers={n_workers} | {runner_wall_s(obs_type, n_workers):.2f} |")


class HoldPosition:
    """A policy of no cost: every action is the agent's current position (so the episodes run all 300 steps)."""

    def reset(self):
        pass

    def predict_action(self, obs, generator=None):
        agent = obs["keypoint"][:, -1, 18:] if "keypoint" in obs else obs["agent_pos"][:, -1]
        return {"action": agent[:, None].repeat(1, 8, 1)}


def runner_wall_s(obs_type: str, n_workers: int) -> float:
    from envs.pusht import PushTRunner

    with PushTRunner(obs_type=obs_type, n_workers=n_workers) as runner:
        return runner.run(HoldPosition())["wall_s"]
