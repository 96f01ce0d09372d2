#!/usr/bin/env python
"""The whole product on a fresh CPU machine, no downloads: collect -> train -> evaluate -> report.

    python scripts/demo.py                         # `make demo`
    python scripts/demo.py --data PATH/pusht_cchi_v7_replay.zarr   # train on the reference human demos instead
    python scripts/demo.py --steps 3000 --n-seeds 20               # quicker, rougher

1. Demonstrations: the scripted PushT expert (robodiff collect pusht --expert) writes data/pusht_expert.zarr
   once; later runs reuse it. With --data, that replay buffer is used instead.
2. Training: a small UNet policy (policy=unet_small) for a fixed number of optimizer steps (--steps, default
   10,000), so the trained policy, and hence the score, is the same on a fast or a slow machine; only the wall
   time differs. The first PROBE_STEPS steps are timed and the demo prints its time estimate for the rest
   before continuing the same run (resumed exactly). Quick 8-seed rollouts every few minutes feed the curves.
   --max-minutes adds a wall-time cap (the score then depends on the machine's speed).
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
DEFAULT_STEPS = 10_000  # the 12-minute run of BENCHMARKS.md reached 9,653 steps (0.849) on a 13-steps/s machine
PROBE_STEPS = 40        # timed at the start (the first 10 are warm-up) for the time estimate

# The CPU recipe: the reference's small UNet, but batch 64 (about 3-4x the optimizer steps per minute of batch 256)
# and a 10x higher constant learning rate after a short warmup; EMA does the averaging a decaying schedule would
# do, and a time-bounded run cannot know its schedule's length in advance. Measured: bench_train.md.
RECIPE = {
    "policy": "unet_small",
    "training.batch_size": 64,
    "training.lr": 1e-3,
    "training.lr_scheduler": "constant_with_warmup",
    "training.lr_warmup_steps": 100,
    "training.num_epochs": 1000000,
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


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def estimate_eval_s(checkpoint: Path, n_envs: int, n_chunks: int) -> float:
    """Seconds for one closed-loop evaluation: one timed policy chunk at batch ``n_envs`` x the chunks an
    episode of max_steps needs (simulation is a few seconds on top, parallel to nothing: counted once)."""
    import torch

    from policies.loading import load_policy

    policy, ckpt = load_policy(checkpoint, device="cpu")
    shape_meta = ckpt["config"]["task"]["shape_meta"]["obs"]
    obs = {k: torch.zeros(n_envs, policy.n_obs_steps, *v["shape"]) for k, v in shape_meta.items()}
    policy.set_sampler("ddim", 10)
    policy.predict_action(obs)  # warm-up
    t0 = time.perf_counter()
    policy.predict_action(obs)
    return (time.perf_counter() - t0) * n_chunks + 0.06 * n_envs  # ~60 ms of simulation per episode


def train_budget(overrides: dict, extra: list, steps: int, rollout_minutes: float, n_seeds: int):
    """Train ``steps`` optimizer steps: first PROBE_STEPS of them timed, then the same run resumed to the end.
    Prints the measured rate and the estimate before the long part starts."""
    from policies.train import train_policy
    from robodiff.training.loggers import read_jsonl

    probe = min(PROBE_STEPS, steps)
    # the LR schedule spans the whole budget in both parts (else a decaying schedule would end at the probe)
    overrides = {"training.lr_schedule_steps": steps, **overrides}
    first = {**overrides, "training.max_steps": probe, "training.rollout_every_minutes": "null",
             "training.progress": "false"}
    print(f"[demo] timing the first {probe} of {steps} training steps ...")
    result = train_policy([f"{k}={v}" for k, v in first.items()] + extra)
    rows = [r for r in read_jsonl(result.output_dir / "logs.jsonl") if "elapsed_s" in r]
    warm = min(10, len(rows) - 2)
    s_per_step = (rows[-1]["elapsed_s"] - rows[warm]["elapsed_s"]) / max(1, rows[-1]["step"] - rows[warm]["step"])
    train_s = s_per_step * (steps - result.step)
    eval_s = estimate_eval_s(result.latest_checkpoint, n_seeds, n_chunks=38)
    n_rollouts = int(train_s // (60 * rollout_minutes)) if rollout_minutes else 0
    rollout_s = n_rollouts * estimate_eval_s(result.latest_checkpoint, 8, n_chunks=38)
    total = train_s + eval_s + rollout_s
    print(f"[demo] measured {s_per_step * 1000:.0f} ms per training step ({1 / s_per_step:.1f} steps/s) on this "
          f"machine now; estimate from here: {_minutes(train_s)} training + {_minutes(rollout_s)} for "
          f"{n_rollouts} curve rollouts + {_minutes(eval_s)} evaluation = about {_minutes(total)} (the score does "
          f"not depend on it: the step budget fixes the policy)")
    if result.step >= steps:
        return result
    rest = {**overrides, "training.max_steps": steps, "training.resume": "true", "training.overwrite": "false"}
    return train_policy([f"{k}={v}" for k, v in rest.items()] + extra)


def published_hint() -> None:
    """Point at the shipped, longer-trained policy (if this checkout has it)."""
    from policies.published import PUSHT_LOWDIM

    if PUSHT_LOWDIM.exists():
        rel = PUSHT_LOWDIM.relative_to(REPO) if PUSHT_LOWDIM.is_relative_to(REPO) else PUSHT_LOWDIM
        print(f"[demo] a longer-trained policy on the reference human demos ships with robodiff; evaluate it "
              f"with:\n    python scripts/eval.py {rel} --output outputs/eval_published")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="train on this replay buffer (e.g. the reference PushT zarr)")
    flags.add_output(ap, "the demo's folder (default outputs/demo); each run replaces its results",
                     default=REPO / "outputs" / "demo")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                    help=f"training steps (default {DEFAULT_STEPS:,}); fixes the outcome on any machine")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="also stop training after this wall time (off by default: with it, a slow machine "
                         "trains fewer steps and scores lower)")
    flags.add_episodes(ap, 100, "expert episodes to collect (default 100)")
    ap.add_argument("--n-seeds", type=int, default=50, help="evaluation seeds (default 50)")
    ap.add_argument("--rollout-minutes", type=float, default=4.0, help="minutes between 8-seed rollouts")
    ap.add_argument("overrides", nargs="*", help="extra training config overrides key=value")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")

    import torch

    from policies.evaluate import evaluate, summary_table
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
                 "training.max_minutes": args.max_minutes if args.max_minutes else "null",
                 "training.rollout_every_minutes": args.rollout_minutes, "training.overwrite": "true", **RECIPE}
    cap = f", at most {args.max_minutes:g} min" if args.max_minutes else ""
    print(f"[demo] training {overrides['policy']} on {data} for {args.steps:,} steps{cap}")
    t_train = time.monotonic()
    result = train_budget(overrides, list(args.overrides), args.steps, args.rollout_minutes, args.n_seeds)
    train_wall = time.monotonic() - t_train
    print(f"[demo] trained {result.step} steps ({result.epoch} epochs) in {train_wall / 60:.1f} min")

    print(f"[demo] evaluating on {args.n_seeds} seeds (DDIM-10)")
    # outputs/demo is the demo's own folder: each run replaces the previous run's results (as training.overwrite)
    metrics = evaluate(result.latest_checkpoint, out, n_seeds=args.n_seeds, sampler="ddim", steps=10, n_videos=1,
                       overwrite=True)
    videos = metrics["videos"]
    if videos:
        shutil.copyfile(videos[0], out / "rollout.mp4")
    metrics.update({"train_steps": result.step, "train_wall_min": round(train_wall / 60, 2), "data": str(data),
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
          f"after {result.step} training steps ({train_wall / 60:.1f} min on this machine); "
          f"total {metrics['demo_wall_s']:.0f} s")
    published_hint()
    return 0


if __name__ == "__main__":
    sys.exit(main())
