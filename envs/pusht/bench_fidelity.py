"""How faithfully envs/pusht reproduces the reference PushT demonstrations (all episodes).

For every recorded episode: reset to its first recorded state, replay its recorded actions, and measure the
block's position error (px) and angle error (rad) against the recorded states; also the keypoints computed from
recorded states against the stored keypoints, n_contacts agreement and (on a sample) rendered images against
the stored images.

    robodiff bench fidelity [--zarr ../shared/data/pusht/pusht_cchi_v7_replay.zarr]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


from envs.pusht.env import PushTEnv  # noqa: E402
from envs.pusht.fidelity import keypoint_errors, make_replay_env, replay_episode, wrap_angle  # noqa: E402
from envs.pusht.protocol import REFERENCE_ZARR  # noqa: E402
from envs.pusht.render import Renderer  # noqa: E402
from robodiff.data import ReplayBuffer  # noqa: E402



def pct(x, qs=(50, 90, 99, 100)):
    return " | ".join(f"{v:.3g}" for v in np.percentile(x, qs))


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--zarr", type=Path, default=REFERENCE_ZARR)
    ap.add_argument("--n-episodes", type=int, default=None, help="first N episodes only (default: all)")
    ap.add_argument("--n-images", type=int, default=200, help="frames sampled for the image comparison")


def run(args) -> int:

    rb = ReplayBuffer.open(args.zarr, mode="r")
    states, actions = rb["state"][:], rb["action"][:]
    keypoints, n_contacts = rb["keypoint"][:], rb["n_contacts"][:, 0]
    ends = rb.episode_ends
    n_ep = len(ends) if args.n_episodes is None else min(args.n_episodes, len(ends))

    env = make_replay_env()
    ep_max_pos, ep_mean_pos, ep_max_ang, ep_final_pos = [], [], [], []
    contacts_equal = []
    t0 = time.perf_counter()
    for i in range(n_ep):
        sl = rb.episode_slice(i)
        r = replay_episode(env, states[sl], actions[sl])
        ep_max_pos.append(r["pos_err"].max())
        ep_mean_pos.append(r["pos_err"].mean())
        ep_final_pos.append(r["pos_err"][-1])
        ep_max_ang.append(r["angle_err"].max())
        contacts_equal.append(r["n_contacts"] == n_contacts[sl][1:])
    replay_s = time.perf_counter() - t0
    contacts_equal = np.concatenate(contacts_equal)

    kp_err = keypoint_errors(states, keypoints)

    # The reference recorder seeded episode i with i: compare each first recorded state with reset(seed=i).
    seeded_env = PushTEnv()
    start_err = []
    for i in range(n_ep):
        obs, _ = seeded_env.reset(seed=i)
        first = states[rb.episode_slice(i).start]
        start_err.append(max(np.abs(obs[:4] - first[:4]).max(), abs(wrap_angle(obs[4] - first[4]))))

    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(states), size=min(args.n_images, len(states)), replace=False))
    img = rb["img"]
    recorded = img.oindex[idx] if hasattr(img, "oindex") else img[idx]  # zarr array or in-memory numpy
    renderer = Renderer()
    img_err = np.array([
        np.abs(renderer.render(states[j, :2], states[j, 2:5], 96).astype(np.float32) - np.asarray(rec, np.float32)).mean()
        for j, rec in zip(idx, recorded)
    ])

    print(f"PushT fidelity vs {args.zarr.name}: {n_ep} episodes, {sum(rb.episode_lengths[:n_ep]) - n_ep} replayed "
          f"steps in {replay_s:.1f} s\n")
    print("| measure (per episode unless noted) | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|")
    print(f"| block position error, max over episode (px) | {pct(ep_max_pos)} |")
    print(f"| block position error, mean over episode (px) | {pct(ep_mean_pos)} |")
    print(f"| block position error, final step (px) | {pct(ep_final_pos)} |")
    print(f"| block angle error, max over episode (rad) | {pct(ep_max_ang)} |")
    print(f"| keypoint error per frame, max over 9 kps (px) | {pct(kp_err)} |")
    print(f"| rendered 96x96 image vs recorded, mean abs (0-255), {len(idx)} frames | {pct(img_err)} |")
    print()
    print(f"keypoints: {np.mean(kp_err < 1e-3):.1%} of frames within 1e-3 px, {np.mean(kp_err < 1e-2):.1%} within "
          f"1e-2 px, {np.mean(kp_err < 0.1):.1%} within 0.1 px")
    print(f"episodes with max position error < 1e-3 px: {np.mean(np.array(ep_max_pos) < 1e-3):.1%}, "
          f"< 0.1 px: {np.mean(np.array(ep_max_pos) < 0.1):.1%}, < 1 px: {np.mean(np.array(ep_max_pos) < 1):.1%}")
    print(f"n_contacts equal to the recorded value: {contacts_equal.mean():.1%} of steps")
    print(f"episodes whose first state is reset(seed=episode index) within 1e-3: "
          f"{np.sum(np.array(start_err) < 1e-3)}/{n_ep} (max error {max(start_err):.2g})")
    worst = np.argsort(ep_max_pos)[::-1][:5]
    print("worst episodes (index: max px):", ", ".join(f"{i}: {ep_max_pos[i]:.3g}" for i in worst))
