"""The training loop with the real policy on a small buffer: exact resume, DDP (2 CPU processes), bad input.

Run as a script (``torchrun ... tests/test_training_loop.py OUT DATA``) this file is also the DDP worker the
DDP test launches: each rank trains, then saves its parameters so the test can compare ranks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # also when torchrun runs this file as the DDP worker

from robodiff.data.replay_buffer import ReplayBuffer  # noqa: E402
from robodiff.training.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from robodiff.training.config import ConfigError, compose_config  # noqa: E402

from policies.train import CONFIG_DIR  # noqa: E402  (the configs shipped in the package)
from robodiff.cli import script_main  # noqa: E402


def write_buffer(path, n_episodes=10, T=48, seed=0):
    """Smooth synthetic PushT-like episodes (agent follows its action targets) with the standard keys."""
    rng = np.random.default_rng(seed)
    rb = ReplayBuffer.create(path)
    for _ in range(n_episodes):
        target = np.cumsum(rng.normal(0, 8, size=(T, 2)), axis=0) + rng.uniform(100, 400, size=2)
        agent = np.vstack([target[:1], target[:-1]])
        block = np.tile(rng.uniform(150, 350, size=3), (T, 1))
        kp = block[:, None, :2] + rng.normal(0, 20, size=(1, 9, 2))
        rb.add_episode({
            "state": np.concatenate([agent, block], axis=1).astype(np.float32),
            "keypoint": kp.astype(np.float32),
            "action": target.astype(np.float32),
            "n_contacts": np.zeros((T, 1), np.float32),
        })
    return path


def tiny_overrides(out, data, **extra):
    o = {
        "task": "pusht_lowdim", "policy": "unet_lowdim", "task.dataset.path": str(data),
        "task.dataset.max_train_episodes": "null", "task.dataset.val_ratio": "0.2",
        "policy.unet.down_dims": "[16,32]", "policy.unet.step_embed_dim": "16", "policy.unet.kernel_size": "3",
        "policy.sampler.name": "ddim", "policy.sampler.steps": "3",
        "training.batch_size": "32", "training.lr": "1e-3", "training.lr_warmup_steps": "2",
        "training.lr_schedule_steps": "100", "training.rollout_every": "null", "training.progress": "false",
        "training.num_threads": "1", "output_dir": str(out), "seed": "0",
    }
    o.update({k: str(v) for k, v in extra.items()})
    return [f"{k}={v}" for k, v in o.items()]


def losses(out):
    rows = [json.loads(x) for x in (Path(out) / "logs.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def run_train(overrides):
    from policies.train import train_policy

    return train_policy(overrides)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_buffer(tmp_path_factory.mktemp("data") / "buf.zarr")


def test_resume_continues_exactly(tmp_path, data):
    # uninterrupted: 14 steps (an epoch is 10 steps of 32 windows here; the resume point is mid-epoch)
    full = run_train(tiny_overrides(tmp_path / "full", data, **{"training.max_steps": 14}))
    assert full.step == 14
    # interrupted after 7 steps (mid-epoch), then resumed to 14
    part = run_train(tiny_overrides(tmp_path / "part", data, **{"training.max_steps": 7}))
    assert part.step == 7 and load_checkpoint(part.latest_checkpoint)["progress"]["batch_in_epoch"] == 7
    resumed = run_train(tiny_overrides(tmp_path / "part", data, **{"training.max_steps": 14, "training.resume": "true"}))
    assert resumed.step == 14
    a, b = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert sorted(b) == list(range(1, 15))  # no duplicated or missing steps in the resumed log
    assert all(a[s] == b[s] for s in range(1, 15)), {s: (a[s], b[s]) for s in a if a[s] != b[s]}
    wa = load_checkpoint(full.latest_checkpoint)
    wb = load_checkpoint(resumed.latest_checkpoint)
    for k in wa["ema_model"]:
        assert torch.equal(wa["ema_model"][k], wb["ema_model"][k]), k
    assert (tmp_path / "full" / "curves.png").stat().st_size > 1000


def test_existing_run_is_not_overwritten(tmp_path, data):
    run_train(tiny_overrides(tmp_path / "r", data, **{"training.max_steps": 2}))
    before = (tmp_path / "r" / "checkpoints" / "latest.ckpt").read_bytes()
    with pytest.raises(FileExistsError, match="training.resume=true"):
        run_train(tiny_overrides(tmp_path / "r", data, **{"training.max_steps": 2}))
    with pytest.raises(CheckpointError, match="different 'policy'"):
        run_train(tiny_overrides(tmp_path / "r", data, **{"training.max_steps": 4, "training.resume": "true",
                                                          "policy.unet.down_dims": "[16,16]"}))
    assert (tmp_path / "r" / "checkpoints" / "latest.ckpt").read_bytes() == before


def test_config_typos_list_valid_choices():
    with pytest.raises(ConfigError, match="valid choices: .*unet_lowdim"):
        compose_config(CONFIG_DIR, ["policy=unet_lowdm"])
    with pytest.raises(ConfigError, match="did you mean 'lr'.*valid keys under training"):
        compose_config(CONFIG_DIR, ["training.lrr=1"])
    for task in ("pusht_lowdim", "pusht_state", "pusht_image", "pusht_expert"):
        for policy in ("unet_lowdim", "unet_image", "transformer_lowdim", "transformer_hybrid"):
            cfg = compose_config(CONFIG_DIR, [f"task={task}", f"policy={policy}"])
            assert cfg["policy"]["horizon"] == 16 and cfg["task"]["name"] == task


def test_cli_bad_input_messages(tmp_path, data, capsys):
    assert script_main("policies.train", tiny_overrides(tmp_path / "a", tmp_path / "nope.zarr")) == 2
    assert "dataset not found" in capsys.readouterr().err
    nokp = ReplayBuffer.create(tmp_path / "nokp.zarr")
    nokp.add_episode({"state": np.zeros((20, 5), np.float32), "action": np.zeros((20, 2), np.float32)})
    assert script_main("policies.train", tiny_overrides(tmp_path / "b", tmp_path / "nokp.zarr")) == 2
    err = capsys.readouterr().err
    assert "no key 'keypoint'" in err and "pusht_lowdim" in err
    assert script_main("policies.train", ["task=pusht_lowdm"]) == 2
    assert "valid choices" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_ema_tracks_policy_in_place(tmp_path, data):
    import policies
    from policies.train import build_dataset
    from robodiff.training.trainer import Trainer

    cfg = compose_config(CONFIG_DIR, tiny_overrides(tmp_path / "ema", data, **{"training.max_steps": 3}))
    trainer = Trainer(cfg, policies.build_policy, build_dataset(cfg))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    # diffusers' shadow copy is the EMA model's own storage: no copy_to() needed before a rollout
    assert all(s.data_ptr() == p.data_ptr() for s, p in zip(trainer.ema.shadow_params, trainer.ema_model.parameters()))
    trainer.run()
    name = next(k for k in start if k.startswith("denoiser") and start[k].dtype == torch.float32)
    live, ema = trainer.model.state_dict()[name], trainer.ema_model.state_dict()[name]
    assert not torch.equal(ema, start[name]) and not torch.equal(ema, live)
    # decay after 3 steps is 1 - 3 ** -0.75 = 0.56: the EMA sits between the start and the live weights
    assert (ema - live).norm() < (start[name] - live).norm()
    assert trainer.ema.optimization_step == 3


def test_wandb_missing_is_a_warning_not_a_crash(tmp_path):
    from robodiff.training.loggers import RunLogger, plot_curves

    pytest.importorskip("matplotlib")
    try:
        import wandb  # noqa: F401
        pytest.skip("wandb is installed here")
    except ImportError:
        pass
    with pytest.warns(UserWarning, match="wandb is not installed"):
        log = RunLogger(tmp_path, tensorboard=False, wandb_cfg={"enabled": True})
    log.log({"train/loss": 1.0}, 1)
    log.log({"val/loss": 0.5, "test/mean_score": 0.25}, 2)
    log.close()
    assert plot_curves(tmp_path / "logs.jsonl", tmp_path / "c.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------- DDP
DDP_RUN = {"training.max_steps": 12, "training.batch_size": 64, "training.lr": "3e-3"}


def _ddp_worker(out, data):
    """One torchrun rank: train, then dump the parameters this rank holds."""
    import policies
    from policies.train import build_dataset
    from robodiff.training.trainer import Trainer

    cfg = compose_config(CONFIG_DIR, tiny_overrides(out, data, **DDP_RUN))
    trainer = Trainer(cfg, policies.build_policy, build_dataset(cfg))
    assert trainer.dist.world_size == 2 and trainer.local_bs == 32
    trainer.run()
    torch.save(trainer.model.state_dict(), Path(out).parent / f"ddp_rank{trainer.dist.rank}.pt")


@pytest.mark.slow
def test_ddp_two_processes_matches_single_process(tmp_path, data):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           __file__, str(tmp_path / "ddp"), str(data)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    p0, p1 = (torch.load(tmp_path / f"ddp_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(p0[k], p1[k]) for k in p0)  # gradients were averaged: ranks stay identical
    single = run_train(tiny_overrides(tmp_path / "single", data, **DDP_RUN))
    assert single.step == 12
    ld, ls = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert sorted(ld) == sorted(ls) == list(range(1, 13))  # same number of optimizer steps per epoch
    # same global batch and data: the loss curves agree up to the diffusion noise drawn per rank
    assert abs(ld[1] - ls[1]) / ls[1] < 0.15  # identical initial weights
    late_d, late_s = np.mean([ld[s] for s in range(7, 13)]), np.mean([ls[s] for s in range(7, 13)])
    assert abs(late_d - late_s) / late_s < 0.25, (late_d, late_s)
    assert late_d < 0.8 * ld[1] and late_s < 0.8 * ls[1]  # both actually trained


if __name__ == "__main__":
    _ddp_worker(sys.argv[1], sys.argv[2])
