"""The scripted PushT expert (envs/pusht/expert.py) and the collection command (robodiff collect pusht)."""

import math

import numpy as np
import pytest
import shapely

from envs.pusht import PushTEnv, coverage
from envs.pusht.expert import PushTExpert, _route_around, demonstrate, pose_error
from envs.pusht.geometry import GOAL_POSE, T_OUTLINE_LOCAL, to_world
from envs.pusht.arena import AGENT_RADIUS
from robodiff.cli import script_main
from robodiff.data import ReplayBuffer


def collect(argv):
    return script_main("envs.pusht.collect", argv)


# Test seeds the expert solves in few steps (robodiff bench expert measures all 50).
QUICK_TEST_SEEDS = (100007, 100029, 100048, 100025)


def test_pose_error_is_zero_only_at_the_goal():
    assert pose_error(GOAL_POSE) == pytest.approx(0.0, abs=1e-9)
    assert pose_error(GOAL_POSE + [3.0, -4.0, 0.0]) == pytest.approx(5.0)
    assert pose_error(GOAL_POSE + [0.0, 0.0, 2 * math.pi]) == pytest.approx(0.0, abs=1e-6)  # angles wrap
    assert pose_error(GOAL_POSE + [0.0, 0.0, 0.1]) > 5.0


def test_route_around_the_block_keeps_clear_of_it():
    pose = np.array([256.0, 256.0, 0.3])
    t_world = shapely.Polygon(to_world(T_OUTLINE_LOCAL, pose))
    radius = AGENT_RADIUS + 5.0
    start = np.array([256.0, 120.0])  # beyond the bar
    goal = np.array([300.0, 420.0])  # beyond the stem: the straight line crosses the T
    assert shapely.LineString([start, goal]).intersects(t_world)
    route = _route_around(pose, start, goal, radius)
    assert np.allclose(route[0], start) and np.allclose(route[-1], goal) and len(route) > 2
    assert t_world.distance(shapely.LineString(route)) > radius - 1.5


@pytest.mark.parametrize("seed", QUICK_TEST_SEEDS)
def test_expert_solves_test_seed(seed):
    episode, stats = demonstrate(seed, record=False)
    assert episode is None
    assert stats["success"], stats
    assert stats["max_coverage"] > 0.95 and stats["n_steps"] < 300


def test_expert_episode_replays_and_matches_the_dataset_layout():
    """state[t] is the observation before action[t]: replaying the actions reproduces the states and succeeds."""
    seed = QUICK_TEST_SEEDS[0]
    episode, stats = demonstrate(seed, PushTExpert())
    T = stats["n_steps"]
    shapes = {"img": ((T, 96, 96, 3), np.uint8), "state": ((T, 5), np.float32),
              "keypoint": ((T, 9, 2), np.float32), "action": ((T, 2), np.float32),
              "n_contacts": ((T, 1), np.float32)}
    assert set(episode) == set(shapes)
    for key, (shape, dtype) in shapes.items():
        assert episode[key].shape == shape and episode[key].dtype == dtype, key

    env = PushTEnv(obs_type="state", render_mode=None)
    obs, _ = env.reset(seed=seed)
    for t in range(T):
        # the expert executed exactly the stored float32 actions, so the replay is exact up to float32 storage
        np.testing.assert_allclose(episode["state"][t], obs.astype(np.float32), atol=1e-4)
        np.testing.assert_allclose(episode["keypoint"][t], env.block_keypoints().astype(np.float32), atol=1e-4)
        obs, _, terminated, _, info = env.step(episode["action"][t].astype(np.float64))
    assert terminated and info["coverage"] > 0.95
    # the last recorded state is short of success; the last action reaches it (as in the human data)
    assert coverage(episode["state"][-1, 2:5]) <= 0.95
    # smooth, human-like targets: no jumps across the arena between consecutive steps
    assert np.linalg.norm(np.diff(episode["action"], axis=0), axis=1).max() < 40.0
    assert episode["img"].std() > 10  # a rendered scene, not a blank frame


@pytest.mark.slow
def test_collect_script_writes_a_valid_buffer(tmp_path, capsys):
    out = tmp_path / "expert.zarr"
    assert collect(["--expert", "--episodes", "2", "--output", str(out), "--n-workers", "2"]) == 0
    rb = ReplayBuffer.open(out)
    assert rb.n_episodes == 2
    assert sorted(rb.keys()) == ["action", "img", "keypoint", "n_contacts", "state"]
    n = rb.n_steps
    assert rb["img"].shape == (n, 96, 96, 3) and rb["img"].dtype == np.uint8
    assert rb["state"].shape == (n, 5) and rb["keypoint"].shape == (n, 9, 2)
    assert rb["action"].shape == (n, 2) and rb["n_contacts"].shape == (n, 1)
    for key in ("state", "keypoint", "action", "n_contacts"):
        assert rb[key].dtype == np.float32, key
    # episodes are written in seed order: the first starts at seed 0's start
    start = PushTEnv(obs_type="state", render_mode=None).reset(seed=0)[0]
    np.testing.assert_allclose(rb.get_episode(0)["state"][0], start, atol=1e-3)
    # a second run refuses to clobber it (old flag spellings still parse)
    capsys.readouterr()
    assert collect(["--expert", "--episodes", "1", "--out", str(out), "--workers", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert ReplayBuffer.open(out).n_episodes == 2


def test_collect_refuses_test_seeds(tmp_path, capsys):
    assert collect(["--expert", "--episodes", "5", "--start-seed", "99990", "--output", str(tmp_path / "x")]) == 2
    assert "overlap the evaluation seeds" in capsys.readouterr().err
    assert collect(["--expert", "--episodes", "5", "--seed-start", "99990", "--output", str(tmp_path / "x")]) == 2
    assert "overlap the evaluation seeds" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
