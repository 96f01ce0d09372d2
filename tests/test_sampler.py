"""SequenceSampler: window counts, edge padding, key_first_k, and the reference's episode split."""

from pathlib import Path

import numpy as np
import pytest

from robodiff.data.sampler import SequenceSampler, compute_window_bounds, downsample_mask, get_val_mask

PUSHT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pusht" / "pusht_cchi_v7_replay.zarr"


def _two_episodes():
    # episode 0: steps 0..4 (len 5), episode 1: steps 5..11 (len 7); value = global step index
    ends = np.array([5, 12])
    data = {"x": np.arange(12, dtype=np.float32)[:, None], "y": np.arange(12) * 10}
    return data, ends


def _naive_windows(data, ends, horizon, pad_before, pad_after):
    """Straightforward per-episode loop, the definition the vectorised sampler must match."""
    out, start = [], 0
    for end in ends:
        ep = data[start:end]
        for s in range(-pad_before, len(ep) - horizon + pad_after + 1):
            out.append(np.stack([ep[min(max(s + j, 0), len(ep) - 1)] for j in range(horizon)]))
        start = end
    return out


def test_window_count_per_episode():
    data, ends = _two_episodes()
    s = SequenceSampler(data, ends, horizon=4, pad_before=1, pad_after=3)
    # L - H + pb + pa + 1 per episode: (5-4+1+3+1) + (7-4+1+3+1)
    assert len(s) == 6 + 8


def test_padding_repeats_edge_frames_at_both_ends():
    data, ends = _two_episodes()
    s = SequenceSampler(data, ends, horizon=4, pad_before=2, pad_after=3)
    first = s.sample_sequence(0)["x"][:, 0]
    assert first.tolist() == [0, 0, 0, 1]  # two steps before the episode repeat step 0
    last_of_ep0 = s.sample_sequence(len(compute_window_bounds(ends[:1], 4, 2, 3)) - 1)["x"][:, 0]
    assert last_of_ep0.tolist() == [4, 4, 4, 4]  # never crosses into episode 1
    first_of_ep1 = s.sample_sequence(len(compute_window_bounds(ends[:1], 4, 2, 3)))["x"][:, 0]
    assert first_of_ep1.tolist() == [5, 5, 5, 6]
    assert s.sample_sequence(len(s) - 1)["x"][:, 0].tolist() == [11, 11, 11, 11]


@pytest.mark.parametrize("horizon,pb,pa", [(4, 0, 0), (4, 1, 3), (16, 1, 7), (3, 2, 2)])
def test_matches_naive_loop(horizon, pb, pa):
    rng = np.random.default_rng(0)
    ends = np.cumsum(rng.integers(2, 20, size=7))
    data = {"x": rng.normal(size=(ends[-1], 3)).astype(np.float32)}
    s = SequenceSampler(data, ends, horizon, pb, pa)
    naive = _naive_windows(data["x"], ends, horizon, pb, pa)
    assert len(s) == len(naive)
    batch = s.sample_batch(np.arange(len(s)))["x"]
    np.testing.assert_array_equal(batch, np.stack(naive) if naive else batch)


def test_key_first_k_returns_only_first_steps():
    data, ends = _two_episodes()
    s = SequenceSampler(data, ends, horizon=5, pad_before=1, pad_after=4, key_first_k={"y": 2})
    b = s.sample_batch(np.array([0, 3]))
    assert b["x"].shape == (2, 5, 1) and b["y"].shape == (2, 2)
    np.testing.assert_array_equal(b["y"], b["x"][:, :2, 0] * 10)


def test_episode_mask_selects_episodes():
    data, ends = _two_episodes()
    s = SequenceSampler(data, ends, horizon=2, episode_mask=np.array([False, True]))
    assert len(s) == 6
    assert s.sample_batch(np.arange(len(s)))["x"].min() == 5
    with pytest.raises(ValueError, match="one entry per episode"):
        SequenceSampler(data, ends, horizon=2, episode_mask=np.array([True]))


def test_bad_keys_and_lengths_are_named():
    data, ends = _two_episodes()
    with pytest.raises(KeyError, match="'z'"):
        SequenceSampler(data, ends, horizon=2, keys=["z"])
    with pytest.raises(ValueError, match="'x' has 11 steps"):
        SequenceSampler({"x": data["x"][:11]}, ends, horizon=2)


def test_val_mask_and_downsample_reference_counts():
    val = get_val_mask(206, 0.02, seed=42)
    assert val.sum() == 4
    train = downsample_mask(~val, 90, seed=42)
    assert train.sum() == 90 and not (train & val).any()
    assert get_val_mask(206, 0.0, 42).sum() == 0
    assert get_val_mask(3, 0.9, 0).sum() == 2  # always leaves one training episode
    assert downsample_mask(~val, None, 42).sum() == 202


@pytest.mark.skipif(not PUSHT.exists(), reason="reference PushT data not present")
def test_reference_split_gives_10726_windows():
    from robodiff.data.replay_buffer import ReplayBuffer

    ends = ReplayBuffer.open(PUSHT).episode_ends
    train = downsample_mask(~get_val_mask(len(ends), 0.02, 42), 90, 42)
    assert len(compute_window_bounds(ends, 16, 1, 7, train)) == 10726
