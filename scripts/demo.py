#!/usr/bin/env python
"""The whole product on a fresh CPU machine, no downloads: collect -> train -> evaluate -> report.

    python scripts/demo.py                         # `make demo`
    python scripts/demo.py --data PATH/pusht_cchi_v7_replay.zarr   # train on the reference human demos instead
    python scripts/demo.py --minutes 5 --n-seeds 20                # quicker, rougher

1. Demonstrations: the scripted PushT expert (robodiff collect pusht --expert) writes data/pusht_expert.zarr
   once; later runs reuse it. With --data, that replay buffer is used instead.
2. Training: a small UNet policy (policy=unet_small) for a bounded wall time (--minutes, default 12), with
   quick 8-seed rollouts every 4 minutes for the curves.
3. Evaluation: the final EMA policy closed-loop on 50 test seeds (DDIM-10), in parallel processes.
Writes outputs/demo/metrics.json, outputs/demo/rollout.mp4, outputs/demo/curves.png and prints the score.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from robodiff import flags

REPO = Path(__file__).resolve().parents[1]

EXPERT_DATA = REPO / "data" / "pusht_expert.zarr"

# The CPU recipe: the reference's small UNet, but batch 64 (about 3-4x the optimizer steps per minute of batch 256)
# and a 10x higher constant learning rate after a short warmup; EMA does the averaging a decaying schedule would
# do, and a time-bounded run cannot know its schedule's length in advance. Measured: bench_train.md.
RECIPE = {
    "policy": "unet_small",
    "training.batch_size": 64,
    "training.lr": 1e-3,
    "training.lr_scheduler": "constant_with_warmup",
    "training.lr_warmup_steps": 100,
    "training.num_epochs": 100000,
    "training.rollout_every": "null",
    "training.rollout_at_end": "false",  # the 50-seed evaluation below is the final point
    "training.checkpoint.every": 10,
    "training.checkpoint.top_k": 0,
    "task.env_runner.n_seeds": 8,
    "task.env_runner.n_videos": 0,
}


def collect(path: Path, n_episodes: int) -> None:
    """Run the scripted expert once; reuse its buffer on later runs."""
    from robodiff.data.replay_buffer import ReplayBuffer, ReplayBufferError

    if path.exists():
        try:
            rb = ReplayBuffer.open(path)
            if rb.n_episodes >= n_episodes:
                print(f"[demo] reusing {rb.n_episodes} expert episodes in {path}")
                return
            print(f"[demo] {path} has {rb.n_episodes} < {n_episodes} episodes; collecting again")
        except ReplayBufferError as exc:
            print(f"[demo] {path} is unusable ({exc}); collecting again")
        shutil.rmtree(path)
    print(f"[demo] collecting {n_episodes} scripted-expert episodes -> {path}")
    t0 = time.monotonic()
    cmd = [sys.executable, str(REPO / "scripts" / "collect_pusht.py"), "--expert", "--episodes", str(n_episodes),
           "--output", str(path)]
    subprocess.run(cmd, check=True, cwd=REPO)
    print(f"[demo] collected in {time.monotonic() - t0:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="train on this replay buffer (e.g. the reference PushT zarr)")
    flags.add_output(ap, "the demo's folder (default outputs/demo); each run replaces its results",
                     default=REPO / "outputs" / "demo")
    ap.add_argument("--minutes", type=float, default=12.0, help="training wall time (default 12)")
    flags.add_episodes(ap, 100, "expert episodes to collect (default 100)")
    ap.add_argument("--n-seeds", type=int, default=50, help="evaluation seeds (default 50)")
    ap.add_argument("--rollout-minutes", type=float, default=4.0, help="minutes between 8-seed rollouts")
    ap.add_argument("overrides", nargs="*", help="extra training config overrides key=value")
    args = ap.parse_args(argv)

    import torch

    from policies.evaluate import evaluate, summary_table
    from policies.train import train_policy
    from robodiff.training.loggers import plot_curves

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    if args.data:
        data, task = Path(args.data).expanduser().resolve(), "pusht_lowdim"
        if not data.exists():
            print(f"error: --data {data} does not exist", file=sys.stderr)
            return 2
    else:
        data, task = EXPERT_DATA, "pusht_expert"
        collect(data, args.episodes)

    overrides = {"task": task, "task.dataset.path": str(data), "output_dir": str(out / "train"),
                 "training.max_minutes": args.minutes, "training.rollout_every_minutes": args.rollout_minutes,
                 "training.overwrite": "true", **RECIPE}
    print(f"[demo] training {overrides['policy']} on {data} for {args.minutes:g} min")
    result = train_policy([f"{k}={v}" for k, v in overrides.items()] + list(args.overrides))
    print(f"[demo] trained {result.step} steps ({result.epoch} epochs)")

    print(f"[demo] evaluating on {args.n_seeds} seeds (DDIM-10)")
    # outputs/demo is the demo's own folder: each run replaces the previous run's results (as training.overwrite)
    metrics = evaluate(result.latest_checkpoint, out, n_seeds=args.n_seeds, sampler="ddim", steps=10, n_videos=1,
                       overwrite=True)
    videos = metrics["videos"]
    if videos:
        shutil.copyfile(videos[0], out / "rollout.mp4")
    metrics.update({"train_minutes": args.minutes, "train_steps": result.step, "data": str(data),
                    "demo_wall_s": round(time.monotonic() - t_start, 1)})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    # the final 50-seed evaluation joins the training curves as its own series
    with open(result.output_dir / "logs.jsonl", "a") as f:
        f.write(json.dumps({"step": result.step, "eval/mean_score": metrics["mean_score"],
                            "eval/success_rate": metrics["success_rate"]}) + "\n")
    plot_curves(result.output_dir / "logs.jsonl", out / "curves.png")
    print(summary_table(metrics, max_rows=10))
    print(f"[demo] wrote {out / 'metrics.json'}, {out / 'rollout.mp4'}, {out / 'curves.png'}")
    print(f"[demo] SCORE mean_score={metrics['mean_score']:.3f} success_rate={metrics['success_rate']:.2f} "
          f"after {args.minutes:g} min of CPU training ({result.step} steps); total {metrics['demo_wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
