"""Measures of how faithfully PushTEnv reproduces recorded PushT demonstrations.

Used by scripts/bench_pusht_fidelity.py (all 206 episodes) and tests/test_pusht_fidelity.py (a few).
Recorded-data convention: ``state[t]`` is the observation before ``action[t]``; stepping ``action[t]`` from
``state[t]`` gives ``state[t+1]``; the block pose is ``state[2:5]`` (origin x, y and unwrapped angle).
"""

from __future__ import annotations

import numpy as np

from envs.pusht.env import PushTEnv
from envs.pusht.geometry import block_keypoints


def wrap_angle(a):
    """Angle differences mapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def replay_episode(env: PushTEnv, states: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Reset to ``states[0]``, step ``actions[:-1]`` and compare the block with ``states[1:]``.

    Returns per-step arrays (T-1,): ``pos_err`` (px, distance of the block origin), ``angle_err`` (rad,
    absolute, wrapped) and ``n_contacts`` (the env's, for comparison with the recorded ``n_contacts[1:]``).
    """
    if len(states) != len(actions) or states.shape[1:] != (5,) or actions.shape[1:] != (2,):
        raise ValueError(f"replay_episode: need states (T, 5) and actions (T, 2), got {states.shape}, "
                         f"{actions.shape}")
    env.reset(options={"reset_to_state": states[0]})
    poses, contacts = [], []
    for action in actions[:-1]:
        info = env.step(action)[-1]
        poses.append(info["block_pose"])
        contacts.append(info["n_contacts"])
    poses = np.array(poses).reshape(-1, 3)
    target = states[1:, 2:5].astype(np.float64)
    return {
        "pos_err": np.linalg.norm(poses[:, :2] - target[:, :2], axis=1),
        "angle_err": np.abs(wrap_angle(poses[:, 2] - target[:, 2])),
        "n_contacts": np.array(contacts),
    }


def keypoint_errors(states: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Per frame, the largest |difference| (px) between the env's keypoints for states (N, 5) and keypoints (N, 9, 2)."""
    return np.abs(block_keypoints(states[:, 2:5]) - keypoints).max(axis=(1, 2))


def make_replay_env() -> PushTEnv:
    """An env for replays: no truncation and no early termination, so any episode length replays."""
    return PushTEnv(obs_type="state", max_episode_steps=None, terminate_on_success=False)
