"""End to end through the command-line entry points: collect -> train -> kill -> resume -> eval with a video."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robodiff.cli import script_main
from robodiff.training.checkpoint import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[1]

TINY = ["policy=unet_small", "policy.unet.down_dims=[16,32]", "policy.unet.step_embed_dim=16",
        "policy.unet.kernel_size=3", "policy.sampler.steps=2", "training.batch_size=16", "training.lr=1e-3",
        "training.lr_warmup_steps=2", "training.lr_schedule_steps=1000", "training.rollout_every=null",
        "training.progress=false", "training.num_threads=1", "task.env_runner.max_steps=40",
        "task.dataset.val_ratio=0.2"]


def _logged_steps(out):
    rows = [json.loads(x) for x in (out / "logs.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "train/loss" in r]


@pytest.mark.slow
def test_collect_train_kill_resume_eval(tmp_path):
    from envs.pusht.collect import collect_expert

    data = tmp_path / "expert.zarr"
    collect_expert(data, 4, workers=1, progress=False)
    out = tmp_path / "run"
    args = ["task=pusht_expert", f"task.dataset.path={data}", f"output_dir={out}", *TINY]
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), *args, "training.max_steps=100000",
           "training.checkpoint.every_steps=3"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this tree's packages, also in a worktree of an editable install
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    latest, killed_at, deadline = out / "checkpoints" / "latest.ckpt", None, time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if latest.exists():
                try:
                    step = load_checkpoint(latest)["progress"]["step"]
                except CheckpointError:
                    step = 0
                if step >= 6:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = step
                    break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    assert killed_at is not None, f"training did not checkpoint in time: {proc.stderr.read()[-2000:]}"
    saved = load_checkpoint(latest)["progress"]["step"]
    assert saved >= killed_at  # whatever the kill interrupted, latest.ckpt is a complete checkpoint

    assert script_main("policies.train", [*args, f"training.max_steps={saved + 4}", "training.resume=true"]) == 0
    assert _logged_steps(out) == list(range(1, saved + 5))  # resumed where it stopped, nothing twice
    assert load_checkpoint(latest)["progress"]["step"] == saved + 4

    ev = tmp_path / "eval"
    assert script_main("policies.evaluate", [str(latest), "--output", str(ev), "--n-seeds", "2", "--n-videos", "1",
                             "--sampler", "ddim", "--steps", "2", "--n-workers", "1"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    for key in ("mean_score", "success_rate", "per_seed", "sampler", "steps", "latency_ms_per_chunk"):
        assert key in metrics
    assert metrics["sampler"] == "ddim" and metrics["steps"] == 2 and len(metrics["per_seed"]) == 2
    assert 0.0 <= metrics["mean_score"] <= 1.0
    lo, hi = metrics["success_ci95"]
    assert 0.0 <= lo <= metrics["success_rate"] <= hi <= 1.0
    card = (ev / "card.md").read_text()  # the model card beside metrics.json, with the command that made it
    assert metrics["task"] in card and "--n-seeds 2 --start-seed" in card and "ddim with 2 denoising steps" in card
    video = Path(metrics["videos"][0])
    assert video.exists() and video.stat().st_size > 1000

    import imageio.v3 as iio

    frames = iio.imread(video, plugin="pyav")
    assert frames.shape[0] >= 10 and frames.shape[-1] == 3


def test_eval_rejects_bad_checkpoints(tmp_path, capsys):
    import torch

    torch.save({"format": "robodiff.checkpoint", "format_version": 99, "config": "{}"}, tmp_path / "v99.ckpt")
    assert script_main("policies.evaluate", [str(tmp_path / "v99.ckpt"), "--output", str(tmp_path / "o")]) == 2
    assert "format version 99" in capsys.readouterr().err
    assert script_main("policies.evaluate", [str(tmp_path / "missing.ckpt"), "--output", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "o" / "metrics.json").exists()
