"""Model cards from a run config + evaluation metrics."""

import numpy as np

from conftest import make_episode
from robodiff.data import ReplayBuffer
from robodiff.training.card import model_card, success_interval, write_card


def config(data_path):
    return {
        "name": "pusht_lowdim-unet_small", "policy_name": "unet_small", "horizon": 16, "n_obs_steps": 2,
        "n_action_steps": 8,
        "task": {"name": "pusht_lowdim",
                 "shape_meta": {"obs": {"keypoint": {"shape": [20], "type": "lowdim", "units": "pixels (512x512)"}},
                                "action": {"shape": [2]}},
                 "dataset": {"path": str(data_path), "val_ratio": 0.02, "max_train_episodes": 90, "seed": 42}},
        "policy": {"denoiser": "unet", "unet": {"down_dims": [64, 128, 256]}, "horizon": 16,
                   "noise": {"num_train_timesteps": 100, "beta_schedule": "squaredcos_cap_v2"},
                   "sampler": {"name": "ddpm", "steps": 100}},
        "training": {"batch_size": 256, "lr": 1e-4, "lr_scheduler": "cosine", "max_steps": None,
                     "ema": {"enabled": True, "power": 0.75}},
    }


def metrics(n=10, k=4):
    per_seed = [{"seed": 100000 + i, "max_reward": 1.0 if i < k else 0.5, "success": i < k} for i in range(n)]
    return {"checkpoint": "run/checkpoints/latest.ckpt", "weights": "ema", "train_step": 1200, "train_epoch": 30,
            "per_seed": per_seed, "mean_score": float(np.mean([r["max_reward"] for r in per_seed])),
            "success_rate": k / n, "sampler": "ddim", "steps": 10, "latency_ms_per_chunk": 85.2, "device": "cpu"}


def test_card_names_task_spaces_data_recipe_score_and_command(tmp_path):
    data = tmp_path / "demos.zarr"
    ReplayBuffer.from_dict([make_episode(i, length=10 + i, image=False) for i in range(3)]).save(data)
    card = model_card(config(data), metrics(), command="python scripts/eval.py run/checkpoints/latest.ckpt --output e")
    assert card.startswith("# pusht_lowdim-unet_small\n")
    assert "observation `keypoint`: `20` lowdim; units: pixels (512x512)" in card
    assert "- action: `2` lowdim; units: not recorded" in card
    assert f"`{data}`: 3 episodes, 33 steps" in card and '"max_train_episodes": 90' in card
    assert "1200 optimizer steps (30 epochs)" in card
    assert 'policy.unet.down_dims: `[64, 128, 256]`' in card and "training.lr_scheduler: `\"cosine\"`" in card
    assert "horizon 16, 2 observation steps, 8 actions executed per chunk" in card
    assert "max reward): **0.700** (95% CI 0.550-0.850)" in card
    assert "success rate: **0.40** (95% Wilson CI 0.17-0.69)" in card and "10 seeds, 100000-100009" in card
    assert "ddim with 10 denoising steps; latency 85 ms per action chunk on cpu" in card
    assert "```bash\npython scripts/eval.py run/checkpoints/latest.ckpt --output e\n```" in card


def test_card_without_data_or_seeds_says_so(tmp_path):
    cfg = config(tmp_path / "elsewhere.zarr")
    m = metrics()
    m.pop("per_seed")
    path = write_card(tmp_path / "card.md", cfg, m)
    text = path.read_text()
    assert "(not readable from" in text and "no per-seed results, so no interval" in text
    assert not list(tmp_path.glob(".*tmp"))


def test_wilson_interval_matches_the_formula():
    rate, lo, hi = success_interval([True] * 4 + [False] * 6)
    z, n, p = 1.959963984540054, 10, 0.4
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert rate == 0.4 and np.isclose(lo, centre - half) and np.isclose(hi, centre + half)
