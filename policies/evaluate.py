#!/usr/bin/env python
"""Evaluate a checkpoint closed-loop in its task's simulation: ``robodiff eval`` (or ``python scripts/eval.py``).

    robodiff eval CHECKPOINT --output DIR [--n-seeds 50] [--sampler ddim --steps 10] [--device auto]

Everything is rebuilt from the checkpoint (its stored config, EMA weights and normalizer); no config files
or dataset are needed. Seeds run in parallel simulation processes (PushTRunner). Writes DIR/metrics.json
(mean_score, success_rate, per_seed, sampler, steps, latency_ms_per_chunk, ...) and DIR/videos/*.mp4, and
prints a per-seed table and a summary; DIR/card.md is the model card. An existing DIR/metrics.json is kept unless --overwrite.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from policies.loading import load_policy, sampler_choice
from robodiff import flags


def evaluate(checkpoint, output, n_seeds=None, start_seed=None, sampler=None, steps=None, device="auto",
             n_videos=2, n_workers=None, n_envs=None, use_ema=True, overwrite=False) -> dict:
    """Run the evaluation and write ``output``/metrics.json; returns the metrics dict. Refuses (FileExistsError)
    to replace an existing metrics.json unless ``overwrite``."""
    from policies.train import make_env_runner

    output = Path(output)
    flags.refuse_existing(output / "metrics.json", overwrite=overwrite)
    device = flags.resolve_device(device)
    policy, ckpt = load_policy(checkpoint, device, use_ema)
    cfg = ckpt["config"]
    name, n_steps = sampler_choice(cfg, sampler, steps, other_steps=10)
    policy.set_sampler(name, n_steps)
    output.mkdir(parents=True, exist_ok=True)
    runner = make_env_runner(cfg, output / "videos", n_seeds=n_seeds, start_seed=start_seed, n_videos=n_videos,
                               n_workers=n_workers, n_envs=n_envs)
    t0 = time.monotonic()
    try:
        result = runner.run(policy)
    finally:
        runner.close()
    metrics = {
        "checkpoint": str(checkpoint),
        "task": cfg["task"]["name"],
        "policy": cfg.get("policy_name"),
        "train_step": ckpt["progress"]["step"],
        "train_epoch": ckpt["progress"]["epoch"],
        "weights": "ema" if use_ema and ckpt.get("ema_model") is not None else "model",
        "n_seeds": len(result["per_seed"]),
        "mean_score": float(result["mean_score"]),
        "success_rate": float(result["success_rate"]),
        **intervals(result["per_seed"]),
        "sampler": name,
        "steps": n_steps,
        "latency_ms_per_chunk": float(result["latency_ms_per_chunk"]),
        "device": device,
        "eval_wall_s": round(time.monotonic() - t0, 2),
        "videos": [str(v) for v in result.get("videos", [])],
        "per_seed": result["per_seed"],
    }
    tmp = output / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, output / "metrics.json")
    from robodiff.training.card import write_card

    flags_used = ["--n-seeds", metrics["n_seeds"], "--start-seed", result["per_seed"][0]["seed"], "--sampler", name,
                  "--steps", n_steps, "--device", device] + (["--no-ema"] if metrics["weights"] == "model" else [])
    command = "robodiff eval " + shlex.join(map(str, [checkpoint, "--output", output, *flags_used]))
    write_card(output / "card.md", cfg, metrics, command)
    return metrics


def intervals(per_seed: list) -> dict:
    """95% intervals over the evaluated seeds: Wilson's for the success rate (scipy's binomtest; it stays inside
    [0, 1] and is honest at 0/50 or 50/50, unlike the normal approximation) and a normal-approximation interval
    (1.96 standard errors) for the mean score."""
    import numpy as np
    from scipy.stats import binomtest

    n = len(per_seed)
    wins = sum(bool(r["success"]) for r in per_seed)
    ci = binomtest(wins, n).proportion_ci(confidence_level=0.95, method="wilson")
    scores = np.array([r["max_reward"] for r in per_seed], dtype=float)
    half = 1.96 * scores.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return {"success_ci95": [float(ci.low), float(ci.high)],
            "mean_score_ci95": [float(scores.mean() - half), float(scores.mean() + half)]}


def summary_table(metrics: dict, max_rows: int = 60) -> str:
    rows = ["| seed | max reward | max coverage | success | steps |", "|---|---|---|---|---|"]
    for r in metrics["per_seed"][:max_rows]:
        rows.append(f"| {r['seed']} | {r['max_reward']:.3f} | {r['max_coverage']:.3f} | "
                    f"{'yes' if r['success'] else 'no'} | {r['n_steps']} |")
    rows.append("")
    lo, hi = metrics["success_ci95"]
    s_lo, s_hi = metrics["mean_score_ci95"]
    rows.append(f"mean_score {metrics['mean_score']:.3f} (95% {s_lo:.3f}-{s_hi:.3f})  "
                f"success_rate {metrics['success_rate']:.2f} (95% Wilson {lo:.2f}-{hi:.2f})  "
                f"({metrics['n_seeds']} seeds, {metrics['sampler']}-{metrics['steps']}, "
                f"{metrics['latency_ms_per_chunk']:.0f} ms/chunk on {metrics['device']}, "
                f"{metrics['eval_wall_s']:.0f} s)")
    return "\n".join(rows)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("checkpoint", help="a .ckpt written by robodiff train")
    flags.add_output(ap, "folder for metrics.json and videos/", required=True)
    flags.add_overwrite(ap, "an existing metrics.json in --output")
    ap.add_argument("--n-seeds", type=int, default=None, help="number of test seeds (default: the task's, else the Push-T protocol's)")
    flags.add_start_seed(ap, None, "first seed (default: the task's, else the Push-T protocol's first test seed)")
    from robodiff.diffusion import SCHEDULER_NAMES

    ap.add_argument("--sampler", choices=SCHEDULER_NAMES, default=None,
                    help="default: the policy's configured sampler")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: configured, or 10 for a "
                                                            "different --sampler)")
    flags.add_device(ap)
    ap.add_argument("--n-videos", type=int, default=2, help="seeds recorded as mp4")
    flags.add_n_workers(ap, None, "simulation processes (default: CPU count)")
    ap.add_argument("--n-envs", type=int, default=None, help="episodes per policy batch (default: all seeds)")
    ap.add_argument("--no-ema", action="store_true", help="evaluate the raw weights instead of the EMA weights")


def run(args) -> int:
    from robodiff.training.checkpoint import CheckpointError
    from robodiff.training.config import ConfigError

    try:
        metrics = evaluate(args.checkpoint, args.output, args.n_seeds, args.start_seed, args.sampler, args.steps,
                           args.device, args.n_videos, args.n_workers, args.n_envs, not args.no_ema, args.overwrite)
    except (CheckpointError, ConfigError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(metrics))
    print(f"wrote {Path(args.output) / 'metrics.json'}" + (f" and {len(metrics['videos'])} videos" if metrics["videos"] else ""))
    return 0
