"""Data-loading throughput: training windows per second for the PushT lowdim task.

Compares, in one run on the same data, robodiff's vectorised batch gather (SequenceDataset through a torch
DataLoader, as training uses it) with a per-window loop in the style of the reference (slice each window,
copy it into a padded array, collate a list of per-sample dicts).

    python scripts/bench_data.py [--data PATH] [--batch 256] [--seconds 3]

Without the reference data it benchmarks on a synthetic buffer of the same size (206 episodes, 25,650 steps).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from envs.pusht.dataset import PushTDataset
from envs.pusht.protocol import REFERENCE_ZARR
from robodiff.data.datasets import make_loader
from robodiff.data.replay_buffer import ReplayBuffer



def synthetic_buffer():
    rng = np.random.default_rng(0)
    rb = ReplayBuffer.create(None)
    for T in rng.integers(49, 247, size=206):
        rb.add_episode({
            "state": rng.uniform(0, 512, (T, 5)).astype(np.float32),
            "keypoint": rng.uniform(0, 512, (T, 9, 2)).astype(np.float32),
            "action": rng.uniform(0, 512, (T, 2)).astype(np.float32),
        })
    return rb


class PerWindowDataset(torch.utils.data.Dataset):
    """The reference's approach: one window at a time, padded by copying edge rows into a new array."""

    def __init__(self, arrays, bounds, horizon, n_obs_steps):
        self.arrays, self.bounds, self.horizon, self.n_obs = arrays, bounds, horizon, n_obs_steps

    def __len__(self):
        return len(self.bounds)

    def __getitem__(self, i):
        start, first, last = (int(v) for v in self.bounds[i])
        lo, hi = max(start, first), min(start + self.horizon, last + 1)
        out = {}
        for k, arr in self.arrays.items():
            seg = arr[lo:hi]
            win = np.empty((self.horizon,) + arr.shape[1:], dtype=arr.dtype)
            a = lo - start
            win[:a] = seg[0]
            win[a : a + len(seg)] = seg
            win[a + len(seg) :] = seg[-1]
            out[k] = win
        return {"obs": {"keypoint": torch.from_numpy(out["keypoint"][: self.n_obs])},
                "action": torch.from_numpy(out["action"])}


def windows_per_second(loader, seconds):
    n, t0 = 0, time.perf_counter()
    while True:
        for batch in loader:
            n += batch["action"].shape[0]
            if time.perf_counter() - t0 > seconds:
                return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REFERENCE_ZARR))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source = args.data if Path(args.data).exists() else synthetic_buffer()
    label = args.data if Path(args.data).exists() else "synthetic (206 episodes)"
    t0 = time.perf_counter()
    ds = PushTDataset(source, "lowdim", horizon=16, n_obs_steps=2, n_action_steps=8,
                      val_ratio=0.02, max_train_episodes=90, seed=42)
    setup = time.perf_counter() - t0
    ref = PerWindowDataset(ds.arrays, ds.sampler.bounds, 16, 2)
    fast = windows_per_second(make_loader(ds, args.batch, shuffle=True), args.seconds)
    slow = windows_per_second(torch.utils.data.DataLoader(ref, args.batch, shuffle=True, collate_fn=default_collate),
                              args.seconds)
    print(f"data: {label}; {len(ds)} training windows (horizon 16, pad 1/7); batch {args.batch}; "
          f"torch threads {args.threads}; dataset setup {setup:.2f} s")
    print("| loader | windows/s | ratio |")
    print("|---|---|---|")
    print(f"| robodiff SequenceDataset (vectorised gather) | {fast:,.0f} | {fast / slow:.1f}x |")
    print(f"| per-window loop + default_collate (reference style) | {slow:,.0f} | 1.0x |")


if __name__ == "__main__":
    main()
