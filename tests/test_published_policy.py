"""The published lowdim PushT policy (policies/published/) loads with the eval loader and predicts."""

from pathlib import Path

import numpy as np
import torch

from policies.published import PUSHT_LOWDIM


def test_published_file_is_small_and_fp16():
    from robodiff.training.checkpoint import load_checkpoint

    assert PUSHT_LOWDIM.stat().st_size <= 10 * 2**20
    ckpt = load_checkpoint(PUSHT_LOWDIM)
    assert ckpt["ema_model"] is None and "optimizer" not in ckpt  # weights for inference only
    dtypes = {k: v.dtype for k, v in ckpt["model"].items() if v.is_floating_point()}
    assert all(d == torch.float16 for k, d in dtypes.items() if k.startswith("denoiser."))
    assert all(d == torch.float32 for k, d in dtypes.items() if k.startswith("normalizer."))
    assert ckpt["config"]["task"]["name"] == "pusht_lowdim"


def test_published_policy_predicts_a_chunk_in_the_board_from_a_test_start(one_thread):
    from envs.pusht.env import PushTEnv
    from policies.loading import load_policy

    policy, ckpt = load_policy(PUSHT_LOWDIM, device="cpu")
    assert next(policy.parameters()).dtype == torch.float32  # fp16 storage, float32 compute
    env = PushTEnv(obs_type="keypoints", render_mode=None)
    obs, _ = env.reset(seed=100000)
    history = torch.from_numpy(np.stack([obs, obs]).astype(np.float32))[None]  # (1, n_obs_steps=2, 20)
    out = policy.predict_action({"keypoint": history}, generator=torch.Generator().manual_seed(0))
    again = policy.predict_action({"keypoint": history}, generator=torch.Generator().manual_seed(0))
    action = out["action"]
    assert action.shape == (1, 8, 2) and torch.isfinite(action).all()
    assert torch.equal(action, again["action"])  # same noise seed, same chunk
    # targets lie on the 512 x 512 board (the normalizer's range, widened by the sampler's clipping)
    assert (action >= -5).all() and (action <= 517).all()
    # a policy that learned something moves its first target toward the agent's neighbourhood, not anywhere
    agent = torch.from_numpy(obs[-2:].astype(np.float32))
    assert torch.linalg.norm(action[0, 0] - agent) < 150


def test_published_config_builds_its_training_data():
    """The stored config is complete: its task names the Push-T obs transform, so `robodiff distill` (and any
    fine-tuning) of the published file rebuilds the teacher's training windows, 20-dim keypoint obs."""
    import pytest

    from policies.train import build_dataset
    from robodiff.training.checkpoint import load_checkpoint

    cfg = load_checkpoint(PUSHT_LOWDIM)["config"]
    path = cfg["task"]["dataset"]["path"]
    if not Path(path).exists():
        pytest.skip(f"reference data not at {path} (run from the repo root with ../shared beside it)")
    sample = build_dataset(cfg)[0]
    assert sample["obs"]["keypoint"].shape == (2, 20) and sample["action"].shape == (16, 2)
    assert cfg["task"]["shape_meta"]["action"]["units"] == "px"


def test_eval_intervals_are_wilson_for_success_and_normal_for_the_score():
    from policies.evaluate import intervals

    none = intervals([{"success": False, "max_reward": 0.5}] * 50)
    assert none["success_ci95"][0] == 0.0 and abs(none["success_ci95"][1] - 0.0714) < 1e-3  # 0/50: not [0, 0]
    half = intervals([{"success": i % 2 == 0, "max_reward": float(i % 2)} for i in range(50)])
    assert abs(half["success_ci95"][0] - 0.366) < 1e-3 and abs(half["success_ci95"][1] - 0.634) < 1e-3
    s_lo, s_hi = half["mean_score_ci95"]
    assert abs((s_lo + s_hi) / 2 - 0.5) < 1e-9 and abs((s_hi - s_lo) / 2 - 1.96 * 0.50508 / 50 ** 0.5) < 1e-3
