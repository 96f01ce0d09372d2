"""Format conversion: robomimic HDF5 import/export and the `robodiff data` CLI."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import make_episode
from robodiff.cli import main
from robodiff.data import ReplayBuffer, ReplayBufferError
from robodiff.data.convert import convert, import_robomimic_hdf5


def write_robomimic(path, n=3):
    """A small file in robomimic's layout, written the way robomimic's tools write it."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i in range(n):
            T = 5 + i
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = T
            g.create_dataset("actions", data=np.full((T, 7), i, np.float32))
            g.create_dataset("states", data=np.zeros((T, 32)))
            obs = g.create_group("obs")
            obs.create_dataset("robot0_eef_pos", data=np.arange(T * 3, dtype=np.float64).reshape(T, 3) + i)
            obs.create_dataset("agentview_image", data=np.full((T, 8, 8, 3), i, np.uint8))
        # demo_10 sorts after demo_2 numerically
        data.move("demo_2", "demo_10")


def test_import_robomimic(tmp_path):
    path = tmp_path / "demo.hdf5"
    write_robomimic(path)
    rb = import_robomimic_hdf5(path)
    assert rb.n_episodes == 3
    assert sorted(rb.keys()) == ["action", "agentview_image", "robot0_eef_pos"]
    np.testing.assert_array_equal(rb.episode_lengths, [5, 6, 7])
    ep = rb.get_episode(2)
    assert ep["action"].shape == (7, 7) and (ep["action"] == 2).all()
    assert ep["agentview_image"].dtype == np.uint8
    sub = import_robomimic_hdf5(path, obs_keys=["robot0_eef_pos"])
    assert sorted(sub.keys()) == ["action", "robot0_eef_pos"]


def test_import_bad_files(tmp_path):
    with pytest.raises(ReplayBufferError, match="does not exist"):
        import_robomimic_hdf5(tmp_path / "none.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(ReplayBufferError, match="not a readable HDF5"):
        import_robomimic_hdf5(tmp_path / "junk.hdf5")
    with h5py.File(tmp_path / "nodata.hdf5", "w") as f:
        f.create_group("other")
    with pytest.raises(ReplayBufferError, match="no 'data' group"):
        import_robomimic_hdf5(tmp_path / "nodata.hdf5")
    path = tmp_path / "demo.hdf5"
    write_robomimic(path)
    with pytest.raises(ReplayBufferError, match="lacks \\['wrist'\\]"):
        import_robomimic_hdf5(path, obs_keys=["wrist"])


def test_convert_round_trips(tmp_path):
    src = tmp_path / "src.zarr"
    rb = ReplayBuffer.create(src)
    for i in range(2):
        rb.add_episode(make_episode(i))
    convert(src, tmp_path / "a.zip")
    convert(tmp_path / "a.zip", tmp_path / "b.hdf5")
    out = convert(tmp_path / "b.hdf5", tmp_path / "c.zarr")
    assert (out.path, out.format, out.n_episodes) == (tmp_path / "c.zarr", "zarr", 2)
    back = ReplayBuffer.open(out.path)
    for i in range(2):
        ep = back.get_episode(i)
        for k, v in make_episode(i).items():
            np.testing.assert_array_equal(ep[k], v, err_msg=k)
    with pytest.raises(ReplayBufferError, match="already exists"):
        convert(src, tmp_path / "c.zarr")


def test_convert_reference_images_to_uint8(tmp_path, pusht_zarr):
    # a 3-episode slice keeps the test fast; the full store converts the same way
    small = tmp_path / "small.zarr"
    ref = ReplayBuffer.open(pusht_zarr)
    out = ReplayBuffer.create(small)
    for i in range(3):
        out.add_episode(ref.get_episode(i))
    assert out["img"].dtype == np.float32
    conv = ReplayBuffer.open(convert(small, tmp_path / "u8.zarr").path)
    assert conv["img"].dtype == np.uint8
    np.testing.assert_array_equal(conv["img"][:], np.asarray(ref["img"][: conv.n_steps]).astype(np.uint8))


def test_cli_info_json(capsys, pusht_zarr):
    assert main(["data", "info", str(pusht_zarr), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_episodes"] == 206 and info["n_steps"] == 25650
    assert info["keys"]["img"]["shape"] == [25650, 96, 96, 3]
    assert "zstd" in info["keys"]["action"]["compressor"]


def test_cli_table_and_errors(tmp_path):
    src = tmp_path / "rb.zarr"
    ReplayBuffer.create(src).add_episode(make_episode(0))
    out = subprocess.run([sys.executable, "-m", "robodiff.cli", "data", "info", str(src)], capture_output=True, text=True)
    assert out.returncode == 0 and "episodes: 1" in out.stdout and "img" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "robodiff.cli", "data", "info", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "robodiff.cli", "data", "convert", str(src), str(src)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "already exists" in bad.stderr and "Traceback" not in bad.stderr


def test_robomimic_sequence_dataset_loads_station_export(tmp_path):
    """robomimic's own SequenceDataset reads robodiff's HDF5 export of a station-format recording."""
    from robomimic.utils import obs_utils
    from robomimic.utils.dataset import SequenceDataset

    rng = np.random.default_rng(0)
    episodes = []
    for T in (12, 9):
        episodes.append({"img": rng.integers(0, 256, (T, 24, 32, 3), dtype=np.uint8),
                         "agent_pos": rng.uniform(-0.3, 0.3, (T, 2)).astype(np.float32),
                         "robot_eef_pose": rng.normal(size=(T, 6)).astype(np.float32),
                         "robot_joint": rng.normal(size=(T, 6)).astype(np.float32),
                         "timestamp": np.arange(T, dtype=np.float64) / 10,
                         "action": rng.uniform(-0.3, 0.3, (T, 2)).astype(np.float32)})
    src = tmp_path / "station.zarr"
    ReplayBuffer.from_dict(episodes).save(src)
    dst = tmp_path / "station.hdf5"
    assert main(["data", "convert", str(src), str(dst)]) == 0
    obs_utils.initialize_obs_modality_mapping_from_dict({"low_dim": ["agent_pos", "robot_eef_pose"], "rgb": ["img"]})
    ds = SequenceDataset(str(dst), obs_keys=("agent_pos", "robot_eef_pose", "img"), dataset_keys=("actions",),
                         seq_length=4, load_next_obs=False, hdf5_use_swmr=False)
    assert ds.n_demos == 2 and len(ds) == 12 + 9
    item = ds[13]  # demo_1, step 1
    np.testing.assert_array_equal(item["actions"][0], episodes[1]["action"][1])
    np.testing.assert_array_equal(item["obs"]["agent_pos"][0], episodes[1]["agent_pos"][1])
    assert item["obs"]["img"].shape[1:] == (24, 32, 3) or item["obs"]["img"].shape[1:] == (3, 24, 32)
    ds.close_and_delete_hdf5_handle()
