#!/usr/bin/env python
"""Collect PushT demonstrations into a zarr replay buffer: by the scripted expert, or by hand (teleop).

    python scripts/collect_pusht.py --expert --episodes 200 --out data/pusht_expert.zarr
    python scripts/collect_pusht.py --expert --episodes 20 --out demo.zarr --workers 1 --keep-failures
    python scripts/collect_pusht.py --teleop --out my_demos.zarr          # a pygame window; mouse drives the agent

Expert episodes use seeds --seed-start, --seed-start + 1, ... (the reference's seeded starts); the evaluation
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

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from envs.pusht.protocol import MAX_STEPS, TEST_SEEDS  # noqa: E402

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
        raise SystemExit(f"collect_pusht: seeds {seeds.start}..{seeds.stop - 1} (--seed-start {seed_start}, up to "
                         f"{max_seeds} seeds) overlap the evaluation seeds {TEST_SEEDS.start}..{TEST_SEEDS.stop - 1};"
                         " choose another --seed-start (e.g. 0)")
    zip_out = out is not None and out.suffix == ".zip"
    if out is not None and out.exists() and not overwrite:
        raise SystemExit(f"collect_pusht: {out} already exists; pass --overwrite to replace it or choose another --out")
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
        print(f"collect_pusht: only {rb.n_episodes} of {n_episodes} episodes succeeded in {max_seeds} seeds",
              file=sys.stderr)
    return rb, stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--expert", action="store_true", help="the scripted expert (envs/pusht/expert.py)")
    source.add_argument("--teleop", action="store_true", help="record by hand with the mouse (a pygame window)")
    ap.add_argument("--out", "--output", dest="out", type=Path, required=True,
                    help="zarr replay buffer to write (a directory; .zip for a zip store)")
    ap.add_argument("--episodes", "--n-episodes", dest="episodes", type=int, default=None,
                    help="expert: episodes to write (default 200); teleop: stop after this many (default: until quit)")
    ap.add_argument("--seed-start", type=int, default=0, help=f"first seed (default 0; {TEST_SEEDS.start}-{TEST_SEEDS.stop - 1} are test seeds)")
    ap.add_argument("--workers", type=int, default=2, help="expert: worker processes (default 2; 0 = in-process)")
    ap.add_argument("--max-steps", type=int, default=MAX_STEPS, help=f"expert: step limit per episode (default {MAX_STEPS})")
    ap.add_argument("--keep-failures", action="store_true", help="expert: also write episodes that did not succeed")
    ap.add_argument("--overwrite", action="store_true", help="expert: replace --out if it exists")
    args = ap.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        ap.error("--episodes must be >= 1")

    if args.teleop:
        from envs.pusht.teleop import run_teleop

        result = run_teleop(args.out, start_seed=args.seed_start, max_episodes=args.episodes)
        print(f"saved episodes {result['saved']} to {args.out} ({result['discarded']} discarded)")
        return 0

    args.episodes = args.episodes or 200
    t0 = time.monotonic()
    rb, stats = collect_expert(args.out, args.episodes, seed_start=args.seed_start, workers=args.workers,
                               max_steps=args.max_steps, keep_failures=args.keep_failures, overwrite=args.overwrite)
    n_ok = sum(s["success"] for s in stats)
    print(f"wrote {rb.n_episodes} episodes ({rb.n_steps} steps) to {args.out} in {time.monotonic() - t0:.0f} s; "
          f"expert success {n_ok}/{len(stats)} seeds")
    return 0 if rb.n_episodes >= args.episodes else 1


if __name__ == "__main__":
    sys.exit(main())
