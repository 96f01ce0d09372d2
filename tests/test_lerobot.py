"""LeRobotDataset v3.0 import/export: a dataset written here in LeRobot's layout, round trips, bad inputs."""

import json
import os
from fractions import Fraction

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robodiff.cli import main
from robodiff.data import ReplayBuffer
from robodiff.data.convert import convert
from robodiff.data.lerobot import LeRobotError, read_lerobot, write_lerobot

FPS = 10
TASKS = ["pick up the cube", "put the cube in the bowl"]
LENGTHS = [6, 9, 7, 8, 5]
CAMERAS = {"observation.images.top": (48, 64), "observation.images.wrist": (32, 32)}
# which file each episode lives in: data files and each camera's video files split differently
DATA_FILE = [0, 0, 0, 1, 1]
VIDEO_FILE = {"observation.images.top": [0, 0, 1, 1, 1], "observation.images.wrist": [0, 0, 0, 0, 0]}


def code_image(code: int, hw) -> np.ndarray:
    """A frame that names itself: 16 bits as a 4x4 grid of black/white blocks (survives lossy video)."""
    h, w = hw
    bits = (code >> np.arange(16)) & 1
    grid = (bits.reshape(4, 4) * 255).astype(np.uint8)
    return np.repeat(np.repeat(grid, h // 4, 0), w // 4, 1)[..., None].repeat(3, -1)


def read_code(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    blocks = img[..., 0].astype(float).reshape(4, h // 4, 4, w // 4).mean((1, 3))
    return int(((blocks.reshape(-1) > 127) << np.arange(16)).sum())


def write_v30(root, lengths=LENGTHS, version="v3.0"):
    """A LeRobot v3.0 dataset written straight from the layout (independent of robodiff's writer)."""
    rng = np.random.default_rng(0)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    state = rng.normal(size=(sum(lengths), 3)).astype(np.float32)
    action = rng.normal(size=(sum(lengths), 2)).astype(np.float32)
    ep_tasks = [i % 2 for i in range(len(lengths))]
    rows = [dict(episode_index=i, tasks=[TASKS[ep_tasks[i]]], length=n, dataset_from_index=int(s),
                 dataset_to_index=int(s + n), **{"data/chunk_index": 0, "data/file_index": DATA_FILE[i],
                                                  "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            for i, (s, n) in enumerate(zip(starts, lengths))]
    for f in sorted(set(DATA_FILE)):
        eps = [i for i in range(len(lengths)) if DATA_FILE[i] == f]
        idx = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in eps])
        table = pa.table({
            # HF datasets writes fixed-length sequences; a variable list column must read the same
            "observation.state": pa.array([list(map(float, s)) for s in state[idx]], pa.list_(pa.float32())),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(action[idx].reshape(-1)), 2),
            "timestamp": pa.array(np.concatenate([np.arange(lengths[i]) / FPS for i in eps]).astype(np.float32)),
            "frame_index": pa.array(np.concatenate([np.arange(lengths[i]) for i in eps])),
            "episode_index": pa.array(np.concatenate([np.full(lengths[i], i) for i in eps])),
            "index": pa.array(idx),
            "task_index": pa.array(np.concatenate([np.full(lengths[i], ep_tasks[i]) for i in eps])),
        })
        path = root / f"data/chunk-000/file-{f:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    for cam, hw in CAMERAS.items():
        for f in sorted(set(VIDEO_FILE[cam])):
            path = root / f"videos/{cam}/chunk-000/file-{f:03d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(path), "w") as out:
                stream = out.add_stream("libx264", rate=FPS, options={"crf": "18", "g": "2"})
                stream.width, stream.height, stream.pix_fmt = hw[1], hw[0], "yuv420p"
                k = 0
                for i in (i for i in range(len(lengths)) if VIDEO_FILE[cam][i] == f):
                    rows[i][f"videos/{cam}/chunk_index"] = 0
                    rows[i][f"videos/{cam}/file_index"] = f
                    rows[i][f"videos/{cam}/from_timestamp"] = k / FPS
                    for j in range(lengths[i]):
                        frame = av.VideoFrame.from_ndarray(code_image(int(starts[i] + j), hw), format="rgb24")
                        frame.pts, frame.time_base = k, Fraction(1, FPS)
                        k += 1
                        for p in stream.encode(frame):
                            out.mux(p)
                    rows[i][f"videos/{cam}/to_timestamp"] = k / FPS
                for p in stream.encode(None):
                    out.mux(p)
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    # pandas' layout for a DataFrame indexed by the task string (what LeRobot's write_tasks produces)
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": TASKS}), root / "meta/tasks.parquet")
    features = {"observation.state": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
                "action": {"dtype": "float32", "shape": [2], "names": None},
                **{c: {"dtype": "video", "shape": [*hw, 3], "names": ["height", "width", "channels"]}
                   for c, hw in CAMERAS.items()},
                **{c: {"dtype": "float32" if c == "timestamp" else "int64", "shape": [1], "names": None}
                   for c in ("timestamp", "frame_index", "episode_index", "index", "task_index")}}
    info = {"codebase_version": version, "robot_type": "so100", "fps": FPS, "total_episodes": len(lengths),
            "total_frames": int(sum(lengths)), "total_tasks": 2, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "splits": {"train": f"0:{len(lengths)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    (root / "meta/info.json").write_text(json.dumps(info))
    return state, action


def test_import_v30_every_frame_in_place(tmp_path):
    root = tmp_path / "so100"
    state, action = write_v30(root)
    rb = read_lerobot(root)
    assert sorted(rb.keys()) == ["action", "state", "top", "wrist"]
    np.testing.assert_array_equal(rb.episode_lengths, LENGTHS)
    np.testing.assert_array_equal(rb["state"], state)
    np.testing.assert_array_equal(rb["action"], action)
    for cam, key in (("observation.images.top", "top"), ("observation.images.wrist", "wrist")):
        assert rb[key].shape == (sum(LENGTHS), *CAMERAS[cam], 3) and rb[key].dtype == np.uint8
        assert [read_code(img) for img in rb[key]] == list(range(sum(LENGTHS))), cam
    meta = rb.attrs["lerobot"]
    assert meta["fps"] == FPS and meta["tasks"] == TASKS and meta["episode_task_index"] == [0, 1, 0, 1, 0]
    assert meta["robot_type"] == "so100"


def test_convert_cli_to_zarr_with_map_keeps_tasks(tmp_path, capsys):
    root = tmp_path / "so100"
    write_v30(root)
    dst = tmp_path / "so100.zarr"
    assert main(["data", "convert", str(root), str(dst), "--map", "observation.images.top=img", "-q"]) == 0
    assert f"wrote {dst} (zarr): 5 episodes, 35 steps" in capsys.readouterr().out
    rb = ReplayBuffer.open(dst)
    assert sorted(rb.keys()) == ["action", "img", "state", "wrist"]
    assert rb.attrs["lerobot"]["tasks"] == TASKS
    # and back: task strings, fps and the original feature names return
    again = tmp_path / "again"
    assert main(["data", "convert", str(dst), str(again), "--to", "lerobot", "-q"]) == 0
    info = json.loads((again / "meta/info.json").read_text())
    assert set(info["features"]) >= {"observation.images.top", "observation.images.wrist", "observation.state"}
    assert info["fps"] == FPS and info["total_tasks"] == 2
    ep = pq.read_table(again / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["tasks"] for r in ep] == [[TASKS[i % 2]] for i in range(5)]


def small_buffer(n_episodes=6):
    rng = np.random.default_rng(1)
    eps, code = [], 0
    for i in range(n_episodes):
        T = int(rng.integers(8, 15))
        eps.append({"state": rng.uniform(0, 512, (T, 5)).astype(np.float32),
                    "keypoint": rng.uniform(0, 512, (T, 9, 2)).astype(np.float32),
                    "action": rng.uniform(0, 512, (T, 2)).astype(np.float32),
                    "n_contacts": rng.integers(0, 3, (T, 1)).astype(np.float32),
                    "timestamp": 1.7e9 + np.arange(T) / 10,  # a station recording's own (T,) clock
                    "img": np.stack([code_image(code + t, (96, 96)) for t in range(T)])})
        code += T
    return ReplayBuffer.from_dict(eps)


@pytest.mark.parametrize("vcodec", ["h264", "av1"])
def test_export_import_round_trip(tmp_path, vcodec):
    if vcodec == "av1" and "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV build has no libsvtav1 AV1 encoder")
    rb = small_buffer()
    dst = tmp_path / "lr"
    # tiny file limits force several data and video files
    write_lerobot(rb, dst, task="push the T", vcodec=vcodec, data_files_size_in_mb=0.002, video_files_size_in_mb=0.004)
    assert len(list((dst / "data").rglob("*.parquet"))) > 1 and len(list((dst / "videos").rglob("*.mp4"))) > 1
    info = json.loads((dst / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == rb.n_steps
    assert info["features"]["observation.images.img"]["info"]["video.codec"] == vcodec
    stats = json.loads((dst / "meta/stats.json").read_text())
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    np.testing.assert_allclose(stats["action"]["mean"], rb["action"][:].mean(0), rtol=1e-5)
    assert np.shape(stats["observation.images.img"]["mean"]) == (3, 1, 1)
    episodes = pq.read_table(dst / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_to_index"] for e in episodes] == rb.episode_ends.tolist()
    back = read_lerobot(dst)
    np.testing.assert_array_equal(back.episode_ends, rb.episode_ends)
    assert "robodiff.timestamp" in info["features"]  # not LeRobot's own timestamp column
    for k in ("state", "keypoint", "action", "n_contacts", "timestamp"):
        assert back[k].dtype == rb[k].dtype and back[k].shape == rb[k].shape
        np.testing.assert_array_equal(back[k], rb[k], err_msg=k)
    assert [read_code(im) for im in back["img"]] == list(range(rb.n_steps))
    assert np.abs(back["img"].astype(int) - rb["img"]).mean() < 3
    assert back.attrs["lerobot"]["tasks"] == ["push the T"]


def test_bad_inputs_name_the_file_and_fix(tmp_path, capsys):
    def fails(args, *expected):
        before = set(os.listdir(tmp_path))
        assert main(["data", "convert", *map(str, args), "-q"]) == 2
        out = capsys.readouterr().err
        errors = [line for line in out.splitlines() if line.startswith("robodiff: error:")]
        assert len(errors) == 1 and "Traceback" not in out, out
        err = errors[0]
        for e in expected:
            assert e in err, (e, err)
        assert set(os.listdir(tmp_path)) == before  # nothing written, no temp folder left
        return err

    old = tmp_path / "old"
    write_v30(old, version="v2.1")
    fails([old, tmp_path / "o.zarr"], "meta/info.json", "'v2.1'", "convert_dataset_v21_to_v30")

    ds = tmp_path / "ds"
    write_v30(ds)
    (ds / "videos/observation.images.top/chunk-000/file-001.mp4").unlink()
    fails([ds, tmp_path / "m.zarr"], "videos/observation.images.top/chunk-000/file-001.mp4 is missing", "download")

    ds2 = tmp_path / "ds2"
    write_v30(ds2)
    f = ds2 / "data/chunk-000/file-001.parquet"
    pq.write_table(pq.read_table(f).drop_columns(["action", "task_index"]), f)
    fails([ds2, tmp_path / "c.zarr"], "data/chunk-000/file-001.parquet lacks columns ['action', 'task_index']")

    fails([ds2.parent / "ds", tmp_path / "k.zarr", "--map", "observation.images.side=side"],
          "--map names ['observation.images.side']", "meta/info.json", "observation.images.wrist")

    rb = tmp_path / "rb.zarr"
    small_buffer(2).save(rb)
    fails([rb, tmp_path / "x", "--to", "lerobot", "--map", "wrist=observation.images.wrist"],
          "--map names ['wrist']", str(rb))


def test_hdf5_destination_prints_its_path(tmp_path, capsys):
    src = tmp_path / "rb.zarr"
    small_buffer(2).save(src)
    dst = tmp_path / "demos.hdf5"
    assert main(["data", "convert", str(src), str(dst)]) == 0
    assert f"wrote {dst} (hdf5): 2 episodes" in capsys.readouterr().out
    out = convert(src, tmp_path / "b.hdf5")
    assert out.path == tmp_path / "b.hdf5" and out.format == "hdf5"


def test_image_stats_from_histograms_equal_numpys():
    from robodiff.data.lerobot import QUANTILES, histogram_stats, image_histogram

    x = np.random.default_rng(0).integers(3, 200, (7, 5, 6, 3)).astype(np.uint8)
    stats = histogram_stats(image_histogram(x[:4]) + image_histogram(x[4:]), 7)  # summed per episode
    f = x.reshape(-1, 3) / 255.0
    expected = {"min": f.min(0), "max": f.max(0), "mean": f.mean(0), "std": f.std(0),
                **{f"q{round(q * 100):02d}": np.quantile(f, q, axis=0) for q in QUANTILES}}
    for k, v in expected.items():
        assert np.shape(stats[k]) == (3, 1, 1)
        np.testing.assert_allclose(np.ravel(stats[k]), v, err_msg=k)
    assert stats["count"] == [7]
