"""Headless teleop: a scripted mouse/key stream records valid PushT episodes into a replay buffer."""

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from envs.pusht import PushTEnv, block_keypoints, initial_state_for_seed  # noqa: E402
from envs.pusht.teleop import key_event, mouse_event, run_teleop  # noqa: E402
from robodiff.data import ReplayBuffer  # noqa: E402


def _push_ticks(seed, n=25, step=(3.0, 2.0)):
    """Hover the agent (starts recording), then drag the mouse along a line."""
    agent = initial_state_for_seed(seed)[:2]
    return [[mouse_event(*agent)]] + [[mouse_event(*(agent + (i + 1) * np.array(step)))] for i in range(n)]


def test_headless_teleop_records_a_valid_episode(tmp_path):
    out = tmp_path / "demos.zarr"
    ticks = _push_ticks(0) + [[key_event("return")]]  # episode 0 (seed 0), saved
    ticks += [[key_event("s"), mouse_event(100, 100)], [mouse_event(104, 100)], [key_event("d")]]  # discarded
    ticks += _push_ticks(1, n=10) + [[key_event("q")]]  # unfinished at quit: discarded
    result = run_teleop(out, ticks)
    assert result["saved"] == [0] and result["discarded"] == 2

    rb = ReplayBuffer.open(out, mode="r")
    assert rb.n_episodes == 1 and sorted(rb.keys()) == ["action", "img", "keypoint", "n_contacts", "state"]
    ep = rb.get_episode(0)
    T = 26
    assert ep["img"].shape == (T, 96, 96, 3) and ep["img"].dtype == np.uint8
    assert ep["state"].shape == (T, 5) and ep["keypoint"].shape == (T, 9, 2)
    assert ep["action"].shape == (T, 2) and ep["n_contacts"].shape == (T, 1)
    # the episode starts at seed 0's reset and the recorded actions are the mouse targets
    start, _ = PushTEnv().reset(seed=0)
    np.testing.assert_allclose(ep["state"][0], start, atol=1e-4)
    np.testing.assert_allclose(ep["action"][1], initial_state_for_seed(0)[:2] + [3.0, 2.0])
    np.testing.assert_allclose(ep["keypoint"], block_keypoints(ep["state"][:, 2:].astype(np.float64)), atol=1e-3)
    # state[t] is the state before action[t]: replaying the actions reproduces the recorded states
    env = PushTEnv(max_episode_steps=None)
    env.reset(options={"reset_to_state": ep["state"][0]})
    for t in range(T - 1):
        obs = env.step(ep["action"][t])[0]
        np.testing.assert_allclose(obs[:2], ep["state"][t + 1, :2], atol=1e-3)


def test_appending_continues_the_seed_sequence(tmp_path):
    out = tmp_path / "demos.zarr"
    run_teleop(out, _push_ticks(0, n=3) + [[key_event("return")]])
    result = run_teleop(out, _push_ticks(1, n=3) + [[key_event("return")]])  # episode 1 -> seed 1
    assert result["saved"] == [1]
    rb = ReplayBuffer.open(out, mode="r")
    np.testing.assert_allclose(rb.get_episode(1)["state"][0], PushTEnv().reset(seed=1)[0], atol=1e-4)


def test_quitting_before_recording_saves_nothing_and_bad_key_names_fail():
    from envs.pusht.teleop import run_teleop as run

    with pytest.raises(ValueError, match="unknown key"):
        key_event("nokey")
    rb = ReplayBuffer.create(None)
    result = run(rb, [[mouse_event(50, 50)], [key_event("q")]], max_episodes=1)
    assert result["saved"] == [] and rb.n_episodes == 0
