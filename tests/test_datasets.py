"""Dataset adapters: contract-3 batches, splits, normalizer, bad input; on a written buffer and the reference."""

from pathlib import Path

import numpy as np
import pytest
import torch

from envs.pusht.dataset import OBS_SOURCES, PushTDataset
from robodiff.data.datasets import DatasetError, SequenceDataset, make_loader
from robodiff.data.replay_buffer import ReplayBuffer

PUSHT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pusht" / "pusht_cchi_v7_replay.zarr"


def _episode(T, seed):
    rng = np.random.default_rng(seed)
    return {
        "img": rng.integers(0, 256, size=(T, 96, 96, 3), dtype=np.uint8),
        "state": rng.uniform(0, 512, size=(T, 5)).astype(np.float32),
        "keypoint": rng.uniform(0, 512, size=(T, 9, 2)).astype(np.float32),
        "action": rng.uniform(0, 512, size=(T, 2)).astype(np.float32),
        "n_contacts": np.zeros((T, 1), np.float32),
    }


@pytest.fixture(scope="module")
def small_buffer(tmp_path_factory):
    path = tmp_path_factory.mktemp("rb") / "small.zarr"
    rb = ReplayBuffer.create(path)
    for i, T in enumerate([20, 13, 30, 17, 25]):
        rb.add_episode(_episode(T, i))
    return path


def test_lowdim_batch_format_and_values(small_buffer):
    ds = PushTDataset(small_buffer, "lowdim", horizon=16, n_obs_steps=2, n_action_steps=8)
    rb = ReplayBuffer.open(small_buffer)
    assert len(ds) == sum(L - 16 + 1 + 7 + 1 for L in [20, 13, 30, 17, 25])
    s = ds[5]  # episode 0, window starting at step 4 (pad_before 1)
    assert s["obs"]["keypoint"].shape == (2, 20) and s["action"].shape == (16, 2)
    kp, st, act = rb["keypoint"][:], rb["state"][:], rb["action"][:]
    np.testing.assert_allclose(s["obs"]["keypoint"][0, :18].numpy(), kp[4].reshape(-1))
    np.testing.assert_allclose(s["obs"]["keypoint"][1, 18:].numpy(), st[5, :2])
    np.testing.assert_allclose(s["action"].numpy(), act[4:20])
    assert ds.shape_meta() == {"obs": {"keypoint": {"shape": [20], "type": "lowdim"}}, "action": {"shape": [2]}}


def test_image_and_state_adapters(small_buffer):
    ds = PushTDataset(small_buffer, "image", horizon=8, n_obs_steps=2, n_action_steps=4)
    b = next(iter(make_loader(ds, batch_size=4, shuffle=True, seed=0)))
    img = b["obs"]["image"]
    assert img.shape == (4, 2, 3, 96, 96) and img.dtype == torch.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert b["obs"]["agent_pos"].shape == (4, 2, 2) and b["action"].shape == (4, 8, 2)
    rb = ReplayBuffer.open(small_buffer)
    first = ds[0]["obs"]["image"][1]  # step 0 (second obs of the first, front-padded window)
    np.testing.assert_allclose(first.permute(1, 2, 0).numpy() * 255, rb["img"][0], atol=1e-3)
    norm = ds.get_normalizer()
    x = norm.normalize({"image": img, "agent_pos": b["obs"]["agent_pos"]})
    assert x["image"].min() >= -1 and x["image"].max() <= 1
    st = PushTDataset(small_buffer, "state", horizon=8)
    assert st[0]["obs"]["state"].shape == (2, 5)


def test_normalizer_fit_on_all_episodes(small_buffer):
    ds = PushTDataset(small_buffer, "lowdim", val_ratio=0.4, seed=0)
    rb = ReplayBuffer.open(small_buffer)
    norm = ds.get_normalizer()
    act = torch.from_numpy(rb["action"][:])
    a = norm["action"].normalize(act)
    # limits fit over every step (train and validation episodes): exactly [-1, 1]
    assert torch.allclose(a.min(0).values, torch.tensor([-1.0, -1.0]), atol=1e-5)
    assert torch.allclose(a.max(0).values, torch.tensor([1.0, 1.0]), atol=1e-5)


def test_split_is_disjoint(small_buffer):
    ds = PushTDataset(small_buffer, "lowdim", horizon=4, val_ratio=0.4, seed=0)
    val = ds.get_validation_dataset()
    assert ds.val_mask.sum() == 2 and not (ds.train_mask & ds.val_mask).any()
    tr_steps = {int(i) for b in ds.sampler.bounds for i in range(b[1], b[2] + 1)}
    va_steps = {int(i) for b in val.sampler.bounds for i in range(b[1], b[2] + 1)}
    assert tr_steps and va_steps and not tr_steps & va_steps
    assert val.arrays["action"] is ds.arrays["action"]  # shared, not copied


def test_missing_key_error_names_key_and_task(tmp_path):
    rb = ReplayBuffer.create(tmp_path / "nokp.zarr")
    ep = _episode(10, 0)
    del ep["keypoint"], ep["img"]
    rb.add_episode(ep)
    with pytest.raises(DatasetError, match=r"no key 'keypoint'.*pusht_keypoints"):
        PushTDataset(tmp_path / "nokp.zarr", "lowdim")
    with pytest.raises(DatasetError, match=r"no key 'img'.*'image'"):
        PushTDataset(tmp_path / "nokp.zarr", "image")
    assert len(PushTDataset(tmp_path / "nokp.zarr", "state", horizon=4)) > 0


def test_missing_path_and_bad_obs_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        PushTDataset(tmp_path / "nope.zarr", "lowdim")
    with pytest.raises(DatasetError, match=r"unknown Push-T obs_type 'lidar'.*aliases"):
        PushTDataset(tmp_path, "lidar")


def test_in_memory_buffer_source():
    rb = ReplayBuffer.create(None)
    rb.add_episode(_episode(12, 3))
    ds = SequenceDataset(rb, ["state", "agent_pos"], horizon=4, n_obs_steps=1, n_action_steps=2,
                         obs_sources=OBS_SOURCES)
    assert len(ds) == 12 - 4 + 0 + 1 + 1
    assert ds[0]["obs"]["agent_pos"].shape == (1, 2)


@pytest.mark.skipif(not PUSHT.exists(), reason="reference PushT data not present")
def test_reference_store_lowdim():
    ds = PushTDataset(PUSHT, "lowdim", horizon=16, n_obs_steps=2, n_action_steps=8,
                      val_ratio=0.02, max_train_episodes=90, seed=42)
    assert len(ds) == 10726
    assert len(ds.get_validation_dataset()) > 0
    b = ds.__getitems__(np.arange(0, 10726, 97))
    assert b["obs"]["keypoint"].shape == (111, 2, 20)
    assert 0 <= b["action"].min() and b["action"].max() <= 512


# ---------------------------------------------------------------- any recorded task (no Push-T knowledge)
def _station_episode(T, seed):
    """A station-style recording: two cameras of different sizes, proprioception in metres."""
    rng = np.random.default_rng(seed)
    return {
        "camera_0": rng.integers(0, 256, size=(T, 24, 32, 3), dtype=np.uint8),
        "camera_1": rng.integers(0, 256, size=(T, 16, 16, 3), dtype=np.uint8),
        "agent_pos": rng.uniform(-0.2, 0.2, size=(T, 2)).astype(np.float32),
        "robot_joint": rng.uniform(-3, 3, size=(T, 6)).astype(np.float32),
        "action": rng.uniform(-0.2, 0.2, size=(T, 2)).astype(np.float32),
    }


STATION_META = {
    "obs": {
        "camera_0": {"shape": [3, 24, 32], "type": "rgb"},
        "camera_1": {"shape": [3, 16, 16], "type": "rgb"},
        "agent_pos": {"shape": [2], "type": "lowdim", "units": "m", "frame": "robot_base"},
        "robot_joint": {"shape": [6], "type": "lowdim", "units": "rad"},
    },
    "action": {"shape": [2], "units": "m", "frame": "robot_base", "meaning": "absolute pusher xy target"},
}


def test_any_cameras_and_lowdim_keys_from_shape_meta():
    rb = ReplayBuffer.from_dict([_station_episode(T, i) for i, T in enumerate([15, 22])])
    ds = SequenceDataset(rb, STATION_META, horizon=8, n_obs_steps=2, n_action_steps=4)
    b = ds.__getitems__([0, 5, 17])
    assert b["obs"]["camera_0"].shape == (3, 2, 3, 24, 32) and b["obs"]["camera_1"].shape == (3, 2, 3, 16, 16)
    assert b["obs"]["robot_joint"].shape == (3, 2, 6) and b["action"].shape == (3, 8, 2)
    np.testing.assert_allclose(ds[0]["obs"]["camera_1"][1].permute(1, 2, 0).numpy() * 255, rb["camera_1"][0])
    assert ds.shape_meta() == STATION_META  # units, frames and the action's meaning travel to the checkpoint
    norm = ds.get_normalizer()
    x = norm.normalize({k: v for k, v in b["obs"].items()})
    assert all(-1 <= float(x[k].min()) and float(x[k].max()) <= 1 for k in ("camera_0", "camera_1"))
    assert abs(float(norm["agent_pos"].unnormalize(x["agent_pos"]).sub(b["obs"]["agent_pos"]).abs().max())) < 1e-5


def test_obs_sources_rename_and_shape_errors():
    eps = [_station_episode(12, 0)]
    for ep in eps:
        ep["img"] = ep.pop("camera_0")
    rb = ReplayBuffer.from_dict(eps)
    meta = {"obs": {"image": {"shape": [3, 24, 32], "type": "rgb"}, "agent_pos": {"shape": [2]}},
            "action": {"shape": [2]}}
    ds = SequenceDataset(rb, meta, horizon=4, n_obs_steps=2, n_action_steps=2, obs_sources={"image": "img"})
    np.testing.assert_array_equal(ds.arrays["image"], rb["img"])
    with pytest.raises(DatasetError, match=r"no key 'image'.*map 'image' to an existing one"):
        SequenceDataset(rb, meta, horizon=4)
    wrong = {"obs": {"image": {"shape": [3, 96, 96], "type": "rgb"}}, "action": {"shape": [2]}}
    with pytest.raises(DatasetError, match=r"obs 'image' has per-step shape \[3, 24, 32\].*expects \[3, 96, 96\]"):
        SequenceDataset(rb, wrong, horizon=4, obs_sources={"image": "img"})
    as_rgb = {"obs": {"agent_pos": {"shape": [2], "type": "rgb"}}, "action": {"shape": [2]}}
    with pytest.raises(DatasetError, match=r"'agent_pos' is lowdim data.*declares type 'rgb'"):
        SequenceDataset(rb, as_rgb, horizon=4)
