"""Fixed-length training windows over a replay buffer of episodes.

A diffusion policy learns from windows of ``horizon`` consecutive steps. Windows may hang over an episode's
edges by ``pad_before`` / ``pad_after`` steps; the overhanging steps repeat the edge frame, so the first
observation of an episode still gets a full history and the last actions still get a full chunk.

Why not the reference's approach (a Python loop that builds index tuples and then copies and pads every
window one at a time): every window here is described by three integers (start, first, last) computed with
numpy for all episodes at once, and a batch of windows is one fancy-index gather
``array[clip(start + arange(T), first, last)]`` from an in-memory array. The clip *is* the edge padding.

Train/validation split: ``get_val_mask`` and ``downsample_mask`` reproduce the reference's episode split
(``numpy.random.default_rng(seed).choice`` without replacement) so numbers are comparable with it.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np


def get_val_mask(n_episodes: int, val_ratio: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of validation episodes.

    ``round(n_episodes * val_ratio)`` episodes (at least one, and never all of them) are drawn without
    replacement with ``np.random.default_rng(seed)``; ``val_ratio <= 0`` holds out nothing.
    206 episodes, ratio 0.02, seed 42 -> 4 validation episodes, as in the reference.
    """
    mask = np.zeros(n_episodes, dtype=bool)
    if val_ratio <= 0 or n_episodes < 2:
        return mask
    n_val = min(max(1, round(n_episodes * val_ratio)), n_episodes - 1)
    rng = np.random.default_rng(seed=seed)
    mask[rng.choice(n_episodes, size=n_val, replace=False)] = True
    return mask


def downsample_mask(mask: np.ndarray, max_n: Optional[int], seed: int = 0) -> np.ndarray:
    """Keep at most ``max_n`` of the True entries of ``mask``, drawn with ``default_rng(seed)``."""
    mask = np.asarray(mask, dtype=bool)
    if max_n is None or mask.sum() <= max_n:
        return mask.copy()
    chosen = np.flatnonzero(mask)
    rng = np.random.default_rng(seed=seed)
    keep = chosen[rng.choice(len(chosen), size=int(max_n), replace=False)]
    out = np.zeros_like(mask)
    out[keep] = True
    return out


def compute_window_bounds(
    episode_ends: np.ndarray,
    horizon: int,
    pad_before: int = 0,
    pad_after: int = 0,
    episode_mask: Optional[np.ndarray] = None,
) -> np.ndarray:
    """All windows of the selected episodes as an (N, 3) int64 array of (start, first, last).

    ``start`` is the buffer index of the window's first step (it may lie before the episode when padding),
    ``first``/``last`` are the episode's first and last buffer index (inclusive), used to clamp.
    An episode of length L yields ``L - horizon + pad_before + pad_after + 1`` windows (none if that is <= 0).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    pad_before = min(max(int(pad_before), 0), horizon - 1)
    pad_after = min(max(int(pad_after), 0), horizon - 1)
    ends = np.asarray(episode_ends, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    if episode_mask is not None:
        episode_mask = np.asarray(episode_mask, dtype=bool)
        if episode_mask.shape != ends.shape:
            raise ValueError(
                f"episode_mask has shape {episode_mask.shape}, expected ({len(ends)},) = one entry per episode"
            )
        starts, ends = starts[episode_mask], ends[episode_mask]
    lengths = ends - starts
    counts = np.maximum(lengths - horizon + pad_before + pad_after + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros((0, 3), dtype=np.int64)
    episode_of = np.repeat(np.arange(len(counts)), counts)  # (N,) which selected episode
    # position of each window inside its episode's run of windows: 0, 1, ..., counts[e]-1
    offset_in_run = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    window_start = starts[episode_of] - pad_before + offset_in_run
    return np.stack([window_start, starts[episode_of], ends[episode_of] - 1], axis=1)


class SequenceSampler:
    """Windows of ``horizon`` steps over in-memory arrays that share one time axis.

    ``data``: mapping key -> np.ndarray (n_steps, ...) (e.g. ``ReplayBuffer`` arrays copied to memory).
    ``key_first_k``: key -> k; such keys return only the first k steps of each window (observations need
    only ``n_obs_steps``; skipping the rest saves most of the copying for images).
    ``sample_sequence(i)`` returns one window, ``sample_batch(idx)`` many at once (one gather per key).
    """

    def __init__(
        self,
        data: Mapping[str, np.ndarray],
        episode_ends: np.ndarray,
        horizon: int,
        pad_before: int = 0,
        pad_after: int = 0,
        keys: Optional[Sequence[str]] = None,
        key_first_k: Optional[Mapping[str, int]] = None,
        episode_mask: Optional[np.ndarray] = None,
    ):
        keys = list(data.keys()) if keys is None else list(keys)
        missing = [k for k in keys if k not in data]
        if missing:
            raise KeyError(f"SequenceSampler: keys {missing} not in data (available: {sorted(data.keys())})")
        n_steps = int(episode_ends[-1]) if len(episode_ends) else 0
        for k in keys:
            if len(data[k]) != n_steps:
                raise ValueError(f"SequenceSampler: array {k!r} has {len(data[k])} steps, episode_ends say {n_steps}")
        self.data = {k: data[k] for k in keys}
        self.keys = keys
        self.horizon = int(horizon)
        self.key_first_k = {k: min(int(v), self.horizon) for k, v in (key_first_k or {}).items()}
        self.bounds = compute_window_bounds(episode_ends, horizon, pad_before, pad_after, episode_mask)
        self._steps = {
            k: np.arange(self.key_first_k.get(k, self.horizon), dtype=np.int64) for k in keys
        }

    def __len__(self) -> int:
        return len(self.bounds)

    def step_indices(self, idx: np.ndarray, n: int) -> np.ndarray:
        """(len(idx), n) buffer indices of the first n steps of windows ``idx``, edge-padded by clamping."""
        b = self.bounds[idx]
        return np.clip(b[:, :1] + np.arange(n), b[:, 1:2], b[:, 2:3])

    def sample_batch(self, idx) -> dict:
        """dict key -> np.ndarray (B, T_key, ...) for window indices ``idx`` (T_key = horizon or first k)."""
        idx = np.asarray(idx, dtype=np.int64)
        out, cache = {}, {}
        for k in self.keys:
            n = len(self._steps[k])
            if n not in cache:
                cache[n] = self.step_indices(idx, n)
            out[k] = self.data[k][cache[n]]
        return out

    def sample_sequence(self, i: int) -> dict:
        """dict key -> np.ndarray (T_key, ...) for one window."""
        return {k: v[0] for k, v in self.sample_batch(np.array([i])).items()}
