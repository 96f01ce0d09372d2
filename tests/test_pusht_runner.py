"""PushTRunner: the evaluation protocol, determinism across batchings and processes, videos, bad policies."""

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from envs.pusht import PushTEnv, PushTRunner, initial_state_for_seed
from envs.pusht.geometry import reward_from_coverage

SEEDS = list(range(100000, 100006))


class GreedyPusher:
    """A deterministic policy that follows the policy contract: get behind the block, push it towards the goal.

    It reads keypoint or image-mode observations and records what it was given.
    """

    def __init__(self):
        self.seen = []
        self.seen_actions = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def predict_action(self, obs, generator=None):
        assert isinstance(generator, torch.Generator)
        self.seen.append({k: (tuple(v.shape), v.dtype) for k, v in obs.items()})
        if "keypoint" in obs:
            kp = obs["keypoint"][:, -1, :18].reshape(-1, 9, 2)
            agent = obs["keypoint"][:, -1, 18:]
            center = kp.mean(1)
        else:  # image: push from where the agent is towards the goal
            agent = obs["agent_pos"][:, -1]
            center = agent + 1.0
        d = torch.tensor([256.0, 256.0]) - center
        d = d / (d.norm(dim=-1, keepdim=True) + 1e-6)
        behind = center - 40 * d
        target = torch.where((agent - behind).norm(dim=-1, keepdim=True) < 10, center + 20 * d, behind)
        action = target[:, None, :].repeat(1, 8, 1)
        self.seen_actions.append(action.numpy().copy())
        return {"action": action, "action_pred": target[:, None, :].repeat(1, 16, 1)}


def test_metrics_follow_the_protocol():
    policy = GreedyPusher()
    with PushTRunner(seeds=SEEDS, max_steps=40, n_workers=0) as runner:
        out = runner.run(policy)
    assert [r["seed"] for r in out["per_seed"]] == SEEDS
    for r in out["per_seed"]:
        assert r["max_reward"] == pytest.approx(reward_from_coverage(r["max_coverage"]))
        assert r["success"] == (r["max_coverage"] > 0.95)
        assert r["n_steps"] == 40 or r["success"]
    assert out["mean_score"] == pytest.approx(np.mean([r["max_reward"] for r in out["per_seed"]]))
    assert out["success_rate"] == pytest.approx(np.mean([r["success"] for r in out["per_seed"]]))
    assert out["n_chunks"] == math.ceil(40 / 8) and out["latency_ms_per_chunk"] > 0
    assert policy.resets == 1
    assert policy.seen[0] == {"keypoint": ((6, 2, 20), torch.float32)}


def test_results_do_not_depend_on_batching_or_processes():
    with PushTRunner(seeds=SEEDS, max_steps=60, n_envs=6, n_workers=2) as runner:
        a = runner.run(GreedyPusher())
    with PushTRunner(seeds=SEEDS, max_steps=60, n_envs=4, n_workers=0) as runner:
        b = runner.run(GreedyPusher())
    assert a["per_seed"] == b["per_seed"]
    assert len({r["max_coverage"] for r in a["per_seed"]}) > 1  # the seeds really differ


def test_first_observation_is_the_seeded_start_repeated():
    class Recorder(GreedyPusher):
        def predict_action(self, obs, generator=None):
            self.first = obs["keypoint"].clone() if not hasattr(self, "first") else self.first
            return super().predict_action(obs, generator)

    policy = Recorder()
    PushTRunner(seeds=[100003], max_steps=8, n_workers=0).run(policy)
    assert torch.equal(policy.first[0, 0], policy.first[0, 1])
    np.testing.assert_allclose(policy.first[0, 0, 18:].numpy(), initial_state_for_seed(100003)[:2])


def test_image_observations_and_video(tmp_path):
    class Recorder(GreedyPusher):
        def predict_action(self, obs, generator=None):
            self.last = {k: v.clone() for k, v in obs.items()}
            return super().predict_action(obs, generator)

    policy = Recorder()
    with PushTRunner(obs_type="image", seeds=SEEDS[:2], max_steps=12, n_workers=2, video_seeds=[SEEDS[1]],
                     video_dir=tmp_path, video_size=128) as runner:
        out = runner.run(policy)
    assert policy.seen[0]["image"] == ((2, 2, 3, 96, 96), torch.float32)
    assert policy.seen[0]["agent_pos"] == ((2, 2, 2), torch.float32)
    # the runner renders image observations itself: they must equal an image env's after the same steps
    env = PushTEnv(obs_type="image")
    env.reset(seed=SEEDS[0])
    assert len(policy.seen_actions) == 2 and not out["per_seed"][0]["success"]
    for a in policy.seen_actions[0][0]:
        obs = env.step(a)[0]
    np.testing.assert_allclose(policy.last["image"][0, -1].permute(1, 2, 0).numpy() * 255, obs["image"], atol=1e-3)
    np.testing.assert_allclose(policy.last["agent_pos"][0, -1].numpy(), obs["agent_pos"], atol=1e-4)
    assert out["videos"] == [str(tmp_path / f"pusht_seed{SEEDS[1]}.mp4")]
    frames = iio.imread(out["videos"][0], plugin="pyav")
    n_steps = out["per_seed"][1]["n_steps"]
    assert frames.shape == (n_steps + 1, 128, 128, 3)
    assert frames[..., 2].mean() > 150  # mostly white background (H.264 is lossy, so no exact pixels)


def test_bad_arguments_and_bad_policy_output():
    with pytest.raises(ValueError, match="valid"):
        PushTRunner(obs_type="pixels")
    with pytest.raises(ValueError, match="video_dir"):
        PushTRunner(seeds=SEEDS, video_seeds=[SEEDS[0]])
    with pytest.raises(ValueError, match="not among"):
        PushTRunner(seeds=SEEDS, video_seeds=[1], video_dir=".")

    class Short(GreedyPusher):
        def predict_action(self, obs, generator=None):
            return {"action": super().predict_action(obs, generator)["action"][:, :3]}

    with pytest.raises(ValueError, match="n_action_steps=8"):
        PushTRunner(seeds=SEEDS[:1], n_workers=0).run(Short())

    class NaNs(GreedyPusher):
        def predict_action(self, obs, generator=None):
            return {"action": torch.full((1, 8, 2), float("nan"))}

    with pytest.raises(ValueError, match=r"NaN or inf actions for seeds \[100000\]"):
        PushTRunner(seeds=SEEDS[:1], n_workers=0).run(NaNs())
