#!/usr/bin/env python
"""Evaluate a checkpoint closed-loop in PushT.

    python scripts/eval.py CHECKPOINT --output DIR [--n-seeds 50] [--sampler ddim --steps 10] [--device cpu]

Everything is rebuilt from the checkpoint (its stored config, EMA weights and normalizer); no config files
or dataset are needed. Seeds run in parallel simulation processes (PushTRunner). Writes DIR/metrics.json
(mean_score, success_rate, per_seed, sampler, steps, latency_ms_per_chunk, ...) and DIR/videos/*.mp4, and
prints a per-seed table and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_policy(checkpoint, device: str = "cpu", use_ema: bool = True):
    """(policy, checkpoint dict) rebuilt through policies.make_policy from the checkpoint's own config."""
    import torch

    import policies
    from robodiff.training.checkpoint import CheckpointError, load_checkpoint, load_module_state

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    try:
        policy = policies.make_policy(cfg["policy"], cfg["task"]["shape_meta"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: its stored policy config does not build with this robodiff "
                              f"version ({exc})") from exc
    state = ckpt.get("ema_model") if use_ema and ckpt.get("ema_model") is not None else ckpt["model"]
    load_module_state(policy, state, checkpoint, "EMA model" if state is ckpt.get("ema_model") else "model")
    return policy.to(torch.device(device)).eval(), ckpt


def evaluate(checkpoint, output, n_seeds=None, start_seed=None, sampler=None, steps=None, device="cpu",
             n_videos=2, n_workers=None, n_envs=None, use_ema=True) -> dict:
    """Run the evaluation and write ``output``/metrics.json; returns the metrics dict."""
    from train import make_pusht_runner

    output = Path(output)
    policy, ckpt = load_policy(checkpoint, device, use_ema)
    cfg = ckpt["config"]
    sampler_cfg = cfg["policy"].get("sampler", {})
    name = sampler or sampler_cfg.get("name", "ddpm")
    n_steps = int(steps or (sampler_cfg.get("steps", 100) if name == sampler_cfg.get("name", "ddpm") else 10))
    policy.set_sampler(name, n_steps)
    output.mkdir(parents=True, exist_ok=True)
    runner = make_pusht_runner(cfg, output / "videos", n_seeds=n_seeds, start_seed=start_seed, n_videos=n_videos,
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
    return metrics


def summary_table(metrics: dict, max_rows: int = 60) -> str:
    rows = ["| seed | max reward | max coverage | success | steps |", "|---|---|---|---|---|"]
    for r in metrics["per_seed"][:max_rows]:
        rows.append(f"| {r['seed']} | {r['max_reward']:.3f} | {r['max_coverage']:.3f} | "
                    f"{'yes' if r['success'] else 'no'} | {r['n_steps']} |")
    rows.append("")
    rows.append(f"mean_score {metrics['mean_score']:.3f}  success_rate {metrics['success_rate']:.2f}  "
                f"({metrics['n_seeds']} seeds, {metrics['sampler']}-{metrics['steps']}, "
                f"{metrics['latency_ms_per_chunk']:.0f} ms/chunk on {metrics['device']}, "
                f"{metrics['eval_wall_s']:.0f} s)")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a .ckpt written by scripts/train.py")
    ap.add_argument("--output", required=True, help="folder for metrics.json and videos/")
    ap.add_argument("--n-seeds", type=int, default=None, help="number of test seeds (default: the task's, 50)")
    ap.add_argument("--start-seed", type=int, default=None, help="first seed (default: the task's, 100000)")
    from robodiff.diffusion import SCHEDULER_NAMES

    ap.add_argument("--sampler", choices=SCHEDULER_NAMES, default=None,
                    help="default: the policy's configured sampler")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: configured, or 10 for a "
                                                            "different --sampler)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--n-videos", type=int, default=2, help="seeds recorded as mp4")
    ap.add_argument("--n-workers", type=int, default=None, help="simulation processes (default: CPU count)")
    ap.add_argument("--n-envs", type=int, default=None, help="episodes per policy batch (default: all seeds)")
    ap.add_argument("--no-ema", action="store_true", help="evaluate the raw weights instead of the EMA weights")
    args = ap.parse_args(argv)

    from robodiff.training.checkpoint import CheckpointError

    try:
        metrics = evaluate(args.checkpoint, args.output, args.n_seeds, args.start_seed, args.sampler, args.steps,
                           args.device, args.n_videos, args.n_workers, args.n_envs, not args.no_ema)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(metrics))
    print(f"wrote {Path(args.output) / 'metrics.json'}" + (f" and {len(metrics['videos'])} videos" if metrics["videos"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
