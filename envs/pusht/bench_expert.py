"""Benchmark the scripted PushT expert: success rate, steps to success and collection speed.

    robodiff bench expert                          # the 50 test seeds 100000-100049, 2 workers
    robodiff bench expert --seeds 0:50 --md out.md # training seeds; append the markdown section to out.md
    (python scripts/bench_expert.py ... is the same command)

Each episode runs exactly as ``robodiff collect pusht --expert`` runs it (96x96 frames rendered and recorded, then
dropped), so episodes/minute is the collection speed. Success = coverage > 0.95 within --max-steps (300).
The host load average is printed with the numbers: on a shared 2-core box it moves the speed, not the success.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np

from envs.pusht.collect import run_episodes
from envs.pusht.protocol import MAX_STEPS, SUCCESS_THRESHOLD, TEST_SEEDS
from robodiff import flags


def _parse_seeds(text: str) -> range:
    start, _, stop = text.partition(":")
    if not stop:
        raise argparse.ArgumentTypeError(f"--seeds expects START:STOP (e.g. 100000:100050), got {text!r}")
    return range(int(start), int(stop))


def time_episodes(seeds: range, workers: int, max_steps: int) -> tuple[list[dict], float]:
    from tqdm import tqdm

    t0 = time.monotonic()
    stats = []
    for _, st in tqdm(run_episodes(seeds, max_steps, workers), total=len(seeds), desc="expert", unit="ep"):
        stats.append(st)
    return stats, time.monotonic() - t0


def report(stats: list[dict], wall_s: float, seeds: range, workers: int, max_steps: int) -> str:
    ok = [s for s in stats if s["success"]]
    steps_ok = np.array([s["n_steps"] for s in ok]) if ok else np.array([np.nan])
    failed = ", ".join(f"{s['seed']} ({s['max_coverage']:.3f})" for s in stats if not s["success"]) or "none"
    load = os.getloadavg()
    return "\n".join([
        f"## Scripted PushT expert — seeds {seeds.start}..{seeds.stop - 1}",
        "",
        f"Command: `robodiff bench expert --seeds {seeds.start}:{seeds.stop} --n-workers {workers}` "
        f"(max {max_steps} steps; frames rendered as in collection)",
        f"Machine: 2-core CPU dev box, shared (load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}); date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| success rate (coverage > {SUCCESS_THRESHOLD} within {max_steps} steps) | {len(ok)}/{len(stats)} = "
        f"{len(ok) / len(stats):.0%} |",
        f"| steps to success: mean / median / max | {steps_ok.mean():.1f} / {np.median(steps_ok):.0f} / "
        f"{steps_ok.max():.0f} |",
        f"| mean max coverage | {np.mean([s['max_coverage'] for s in stats]):.3f} |",
        f"| plans (primitives) per episode, mean | {np.mean([s['n_plans'] for s in stats]):.1f} |",
        f"| wall time, {workers} workers | {wall_s:.0f} s |",
        f"| episodes / minute | {60 * len(stats) / wall_s:.1f} |",
        f"| projected 200 episodes | {200 * wall_s / len(stats) / 60:.1f} min |",
        f"| failed seeds (max coverage) | {failed} |",
        "",
    ])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--seeds", type=_parse_seeds, default=TEST_SEEDS,
                    help=f"START:STOP (default {TEST_SEEDS.start}:{TEST_SEEDS.stop}, the test seeds)")
    flags.add_n_workers(ap, 2, "worker processes (default 2)")
    ap.add_argument("--max-steps", type=int, default=MAX_STEPS)
    ap.add_argument("--md", type=Path, default=None, help="append the markdown section to this file")


def run(args) -> int:
    stats, wall_s = time_episodes(args.seeds, args.n_workers, args.max_steps)
    text = report(stats, wall_s, args.seeds, args.n_workers, args.max_steps)
    print(text)
    if args.md is not None:
        with open(args.md, "a") as f:
            f.write(text + "\n")
    return 0
