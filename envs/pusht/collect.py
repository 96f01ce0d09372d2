"""Collect PushT demonstrations into a zarr replay buffer: by the scripted expert, or by hand (teleop).

    robodiff collect pusht --expert --episodes 200 --output data/pusht_expert.zarr
    robodiff collect pusht --expert --episodes 20 --output demo.zarr --n-workers 1 --keep-failures
    robodiff collect pusht --teleop --output my_demos.zarr     # a pygame window; mouse drives the agent
    (python scripts/collect_pusht.py ... is the same command)

Expert episodes use seeds --start-seed, --start-seed + 1, ... (the reference's seeded starts); the evaluation
seeds 100000-100049 are refused so that training data never contains a test start. Only successful episodes
(coverage > 0.95) are written unless --keep-failures; seeds run until --episodes episodes are written (at most
2 x --episodes + 10 seeds). Episodes are written in seed order whatever the number of workers, so a run is
reproducible, and each is committed to the buffer as soon as it is done: an interrupted run (Ctrl-C, a kill)
leaves a readable buffer of the episodes completed so far (a .zip output is written once at the end, or on
Ctrl-C).

Keys written per step (the reference dataset's layout): img (96, 96, 3) uint8, state (5,) float32
[agent x, y, block x, y, angle], keypoint (9, 2) float32, action (2,) float32 absolute target, n_contacts (1,)
float32; state[t] is the observation before action[t].
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

from envs.pusht.protocol import MAX_STEPS, TEST_SEEDS
from robodiff import flags
from robodiff.cli import UserError

_worker_expert = None  # one expert per worker process (it holds a planning copy of the simulation)


def _run_seed(args):
    seed, max_steps = args
    global _worker_expert
    from envs.pusht.expert import PushTExpert, demonstrate

    if _worker_expert is None:
        _worker_expert = PushTExpert()
    return demonstrate(seed, _worker_expert, max_steps=max_steps)


def run_episodes(seeds, max_steps: int, workers: int):
    """(episode, stats) per seed, in seed order, computed by ``workers`` processes (0 or 1: this process)."""
    jobs = ((s, max_steps) for s in seeds)
    if workers <= 1:
        yield from map(_run_seed, jobs)
        return
    # 'fork' starts the workers cheaply on Linux; imap (ordered) keeps the buffer in seed order.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_run_seed, jobs)


def collect_expert(out: Path | None, n_episodes: int, *, seed_start: int = 0, workers: int = 2,
                   max_steps: int = MAX_STEPS, keep_failures: bool = False, overwrite: bool = False,
                   progress: bool = True):
    """Write ``n_episodes`` expert episodes to ``out`` (None: in memory). Returns (ReplayBuffer, per-seed stats)."""
    from tqdm import tqdm

    from robodiff.data import ReplayBuffer

    max_seeds = 2 * n_episodes + 10
    seeds = range(seed_start, seed_start + max_seeds)
    if seeds.start < TEST_SEEDS.stop and TEST_SEEDS.start < seeds.stop:
        raise UserError(f"collect: seeds {seeds.start}..{seeds.stop - 1} (--start-seed {seed_start}, up to "
                         f"{max_seeds} seeds) overlap the evaluation seeds {TEST_SEEDS.start}..{TEST_SEEDS.stop - 1};"
                         " choose another --start-seed (e.g. 0)")
    zip_out = out is not None and out.suffix == ".zip"
    if out is not None and out.exists() and not overwrite:
        raise UserError(f"collect: {out} already exists; pass --overwrite to replace it or choose another --output")
    rb = ReplayBuffer.create(None if out is None or zip_out else out, overwrite=overwrite)
    stats = []
    bar = tqdm(total=n_episodes, desc="expert episodes", unit="ep", disable=not progress)
    try:
        for episode, st in run_episodes(seeds, max_steps, workers):
            stats.append(st)
            n_ok = sum(s["success"] for s in stats)
            bar.set_postfix(seed=st["seed"], success=f"{n_ok}/{len(stats)}", steps=st["n_steps"], refresh=False)
            if st["success"] or keep_failures:
                rb.add_episode(episode)
                bar.update(1)
            if rb.n_episodes >= n_episodes:
                break
    except KeyboardInterrupt:
        print(f"\ninterrupted: keeping the {rb.n_episodes} episodes completed so far", file=sys.stderr)
    finally:
        bar.close()
        if zip_out and rb.n_episodes:
            rb = rb.save(out, overwrite=overwrite)
    if rb.n_episodes < n_episodes and len(stats) == max_seeds:
        print(f"collect: only {rb.n_episodes} of {n_episodes} episodes succeeded in {max_seeds} seeds",
              file=sys.stderr)
    return rb, stats


def add_arguments(ap: argparse.ArgumentParser) -> None:
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--expert", action="store_true", help="the scripted expert (envs/pusht/expert.py)")
    source.add_argument("--teleop", action="store_true", help="record by hand with the mouse (a pygame window)")
    flags.add_output(ap, "zarr replay buffer to write (a directory; .zip for a zip store); teleop appends to an "
                         "existing one", required=True)
    flags.add_episodes(ap, None, "expert: episodes to write (default 200); teleop: stop after this many "
                                 "(default: until quit)")
    flags.add_start_seed(ap, 0, f"first seed (default 0; {TEST_SEEDS.start}-{TEST_SEEDS.stop - 1} are test seeds)")
    flags.add_n_workers(ap, 2, "expert: worker processes (default 2; 0 = in-process)")
    ap.add_argument("--max-steps", type=int, default=MAX_STEPS, help=f"expert: step limit per episode (default {MAX_STEPS})")
    ap.add_argument("--keep-failures", action="store_true", help="expert: also write episodes that did not succeed")
    flags.add_overwrite(ap, "expert: --output")


def run(args) -> int:
    if args.episodes is not None and args.episodes < 1:
        raise UserError("--episodes must be >= 1")

    if args.teleop:
        from envs.pusht.teleop import run_teleop

        result = run_teleop(args.output, start_seed=args.start_seed, max_episodes=args.episodes)
        print(f"saved episodes {result['saved']} to {args.output} ({result['discarded']} discarded)")
        return 0

    args.episodes = args.episodes or 200
    t0 = time.monotonic()
    rb, stats = collect_expert(args.output, args.episodes, seed_start=args.start_seed, workers=args.n_workers,
                               max_steps=args.max_steps, keep_failures=args.keep_failures, overwrite=args.overwrite)
    n_ok = sum(s["success"] for s in stats)
    print(f"wrote {rb.n_episodes} episodes ({rb.n_steps} steps) to {args.output} in {time.monotonic() - t0:.0f} s; "
          f"expert success {n_ok}/{len(stats)} seeds")
    return 0 if rb.n_episodes >= args.episodes else 1
