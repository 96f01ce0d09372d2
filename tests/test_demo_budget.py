"""`make demo` trains a step budget, so its policy does not depend on how fast the machine is."""

import sys
from pathlib import Path

import torch

from conftest import make_episode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

TINY = {"policy": "unet_small", "policy.unet.down_dims": "[16,32]", "policy.unet.step_embed_dim": 16,
        "policy.unet.kernel_size": 3, "training.batch_size": 8, "training.lr": 1e-3, "training.lr_warmup_steps": 2,
        "training.num_epochs": 1000, "training.rollout_every": "null", "training.rollout_at_end": "false",
        "training.progress": "false", "training.num_threads": 1, "task.dataset.val_ratio": 0.0,
        "task.dataset.max_train_episodes": "null", "training.checkpoint.every": 1000,
        "training.checkpoint.top_k": 0}


def _buffer(path):
    from robodiff.data.replay_buffer import ReplayBuffer

    rb = ReplayBuffer.create(path)
    for i in range(3):
        rb.add_episode(make_episode(i, length=20, image=False))
    return path


def test_step_budget_trains_exactly_the_budget_and_matches_one_uninterrupted_run(tmp_path, monkeypatch, capsys):
    import demo
    from policies.train import train_policy
    from robodiff.training.checkpoint import load_checkpoint

    monkeypatch.setattr(demo, "PROBE_STEPS", 4)
    monkeypatch.setattr(demo, "estimate_eval_s", lambda *a, **k: 1.0)  # the closed loop is not under test here
    data = _buffer(tmp_path / "d.zarr")
    base = {"task": "pusht_lowdim", "task.dataset.path": str(data), "training.overwrite": "true", **TINY}

    result = demo.train_budget({**base, "output_dir": str(tmp_path / "budget")}, [], steps=9, rollout_minutes=0,
                               n_seeds=2)
    assert result.step == 9
    assert "ms per training step" in capsys.readouterr().out  # the estimate is printed before the long part

    # the default cosine schedule: its length must be the budget, not the probe
    straight = train_policy([f"{k}={v}" for k, v in {**base, "output_dir": str(tmp_path / "one"),
                                                          "training.max_steps": 9}.items()])
    a = load_checkpoint(result.latest_checkpoint)["ema_model"]
    b = load_checkpoint(straight.latest_checkpoint)["ema_model"]
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between probe+resume and one run"
