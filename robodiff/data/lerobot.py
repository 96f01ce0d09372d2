"""LeRobotDataset v3.0 import and export (pyarrow for the parquet files, PyAV for the videos).

Layout of a v3.0 dataset (lerobot >= 0.4)::

    meta/info.json                                 codebase_version "v3.0", fps, features, path templates, totals
    meta/stats.json                                per feature min/max/mean/std/count/q01..q99 (images per channel, /255)
    meta/tasks.parquet                             task string -> task_index
    meta/episodes/chunk-000/file-000.parquet       one row per episode: length, frame range, file and time offsets
    data/chunk-000/file-000.parquet                one row per frame: non-video features + timestamp, frame_index,
                                                   episode_index, index, task_index
    videos/<key>/chunk-000/file-000.mp4            one video per camera per file, many episodes back to back

An episode's frame ``i`` of camera ``key`` is the frame shown at ``from_timestamp + timestamp[i]`` in its video
file (``videos/<key>/from_timestamp`` from the episode row); frames are matched within ``TIMESTAMP_TOLERANCE_S``.

Keys map by convention (``action`` <-> ``action``, ``state`` or ``agent_pos`` <-> ``observation.state``, an
image key ``<cam>`` <-> ``observation.images.<cam>``, ``observation.<x>`` -> ``<x>``), overridable per key.
The ``lerobot`` package itself is not a dependency (it pins Python and torch versions robodiff does not);
everything is read and written with pyarrow and PyAV against the layout above.

Nothing is written until the source has been checked (versions, columns, referenced files), and the destination
is built under a temporary name beside it and renamed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from robodiff.data.replay_buffer import ReplayBuffer, ReplayBufferError

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DEFAULT_CHUNKS_SIZE = 1000  # files per chunk folder
DEFAULT_DATA_FILE_MB = 100
DEFAULT_VIDEO_FILE_MB = 200
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
FRAME_FEATURES = {name: {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
                  for name in FRAME_COLUMNS}
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobot's default tolerance when it looks a frame up by time
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
VIDEO_CODECS = {"h264": "libx264", "av1": "libsvtav1"}  # --vcodec name -> PyAV encoder
DEFAULT_CRF = {"h264": 23, "av1": 30}
ATTRS_KEY = "lerobot"  # ReplayBuffer.attrs entry holding fps, tasks and provenance of an imported dataset
RENAMED_PREFIX = "robodiff."  # a buffer key named like a LeRobot frame column is exported under this prefix
SCALAR_SHAPE = "robodiff.shape"  # feature info entry marking a (T,) buffer key stored as LeRobot's shape [1]

V21_FIX = ("convert it to v3.0 with lerobot's converter first "
           "(python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<id>, lerobot >= 0.4)")


class LeRobotError(ReplayBufferError):
    """A LeRobot dataset robodiff cannot read or write; the message names the file and the fix."""


def is_lerobot_dataset(path: str | os.PathLike) -> bool:
    """True for a directory laid out as a LeRobot dataset of any version (v3.0 or older)."""
    path = Path(path)
    return path.is_dir() and ((path / INFO_PATH).is_file() or (path / "meta" / "episodes.jsonl").is_file()
                              or (path / "meta_data").is_dir())


def parse_key_map(items: list[str] | None) -> dict[str, str]:
    """``["SRC=DST", ...]`` (the ``--map`` option) -> ``{SRC: DST}``."""
    out = {}
    for item in items or []:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise LeRobotError(f"--map {item!r}: expected SOURCE_KEY=DEST_KEY, e.g. --map observation.image=img")
        out[src] = dst
    return out


def import_name(feature: str) -> str:
    """Replay-buffer key for a LeRobot feature (the conventions in the module docstring)."""
    if feature == "observation.state":
        return "state"
    for prefix in ("observation.images.", "observation.", RENAMED_PREFIX):
        if feature.startswith(prefix):
            return feature[len(prefix):]
    return feature


def export_name(key: str, is_image: bool, keys: list[str]) -> str:
    """LeRobot feature name for a replay-buffer key."""
    if is_image:
        return f"observation.images.{key}"
    if key == "state" or (key == "agent_pos" and "state" not in keys):
        return "observation.state"
    return RENAMED_PREFIX + key if key in FRAME_COLUMNS else key  # e.g. a station recording's own timestamp


def _fmt(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------- statistics
def _quantile_stats(stats: dict, values_at) -> None:
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = values_at(q)


def feature_stats(x: np.ndarray) -> dict[str, list]:
    """LeRobot's statistics of one low-dim feature over frames (per dimension)."""
    x = np.asarray(x)
    flat = x.reshape(len(x), -1).astype(np.float64)
    stats = {"min": flat.min(0), "max": flat.max(0), "mean": flat.mean(0), "std": flat.std(0)}
    _quantile_stats(stats, lambda q: np.quantile(flat, q, axis=0))
    shape = x.shape[1:] or (1,)
    out = {k: np.asarray(v, np.float64).reshape(shape).tolist() for k, v in stats.items()}
    out["count"] = [int(len(x))]
    return out


def image_histogram(frames: np.ndarray) -> np.ndarray:
    """(C, 256) pixel counts of uint8 frames (T, H, W, C): the exact statistics of every pixel in one pass,
    and summable across episodes, so the dataset's image statistics use every frame, not a sample."""
    c = frames.shape[-1]
    flat = frames.reshape(-1, c)
    return np.stack([np.bincount(flat[:, i], minlength=256) for i in range(c)]).astype(np.int64)


def histogram_stats(hist: np.ndarray, n_frames: int) -> dict[str, list]:
    """LeRobot's image statistics (per channel, values / 255, shape (C, 1, 1)) from :func:`image_histogram`;
    quantiles interpolate linearly between order statistics, as ``np.quantile`` does."""
    v = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum(1, keepdims=True).astype(np.float64)
    mean = (hist * v).sum(1) / n[:, 0]
    stats = {"min": v[np.argmax(hist > 0, axis=1)], "max": v[255 - np.argmax(hist[:, ::-1] > 0, axis=1)],
             "mean": mean, "std": np.sqrt(np.maximum((hist * v ** 2).sum(1) / n[:, 0] - mean ** 2, 0))}
    cum = np.cumsum(hist, axis=1)

    def order_stat(k):  # value of the k-th smallest pixel (0-based), per channel
        return v[np.array([np.searchsorted(cum[i], k[i], side="right") for i in range(len(cum))])]

    def at(q):
        pos = q * (n[:, 0] - 1)
        lo, frac = np.floor(pos), pos - np.floor(pos)
        return order_stat(lo) * (1 - frac) + order_stat(np.minimum(lo + 1, n[:, 0] - 1)) * frac

    _quantile_stats(stats, at)
    out = {k: np.asarray(x, np.float64).reshape(-1, 1, 1).tolist() for k, x in stats.items()}
    out["count"] = [int(n_frames)]
    return out


# ---------------------------------------------------------------------------------------------- parquet helpers
def _column_to_numpy(col, shape: tuple[int, ...], dtype: str, where: str) -> np.ndarray:
    """A (possibly nested, fixed or variable) list column -> (n_rows, *shape) array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    n = len(arr)
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = pc.list_flatten(arr)
    values = arr.to_numpy(zero_copy_only=False)
    size = int(np.prod(shape, dtype=np.int64))
    if values.size != n * size:
        raise LeRobotError(f"{where}: {values.size // max(n, 1)} values per frame, but meta/info.json gives "
                           f"shape {list(shape)}; the file and meta/info.json disagree (re-export the dataset)")
    out = values.reshape((n, *shape)) if shape != (1,) else values.reshape(n, 1)
    return out.astype(dtype, copy=False)


def _array_type(dtype: np.dtype, shape: tuple[int, ...]):
    """Arrow type of a feature column: scalars for shape (1,), else nested fixed-size lists."""
    import pyarrow as pa

    t = pa.from_numpy_dtype(dtype)
    if tuple(shape) == (1,):
        return t
    for d in reversed(shape):
        t = pa.list_(t, int(d))
    return t


def _to_arrow(x: np.ndarray, shape: tuple[int, ...]):
    import pyarrow as pa

    if tuple(shape) == (1,):
        return pa.array(x.reshape(len(x)))
    arr = pa.array(np.ascontiguousarray(x).reshape(-1))
    for d in reversed(shape):
        arr = pa.FixedSizeListArray.from_arrays(arr, int(d))
    return arr


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet: LeRobot reads it with pandas and indexes by the task string.

    The pandas schema metadata below makes ``pandas.read_parquet`` restore that index; it is written by hand
    so that pandas (a large dependency used nowhere else) is not needed just for this small file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["task"], "column_indexes": [],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0",
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, path)


def _read_tasks(root: Path) -> list[str]:
    """task_index -> task string from meta/tasks.parquet (task as a column or as the pandas index)."""
    import pyarrow.parquet as pq

    path = root / TASKS_PATH
    if not path.is_file():
        raise LeRobotError(f"{path} is missing; a v3.0 dataset lists its task strings there "
                           "(download the dataset's meta/ folder again)")
    table = pq.read_table(path)
    names = table.column_names
    text_col = "task" if "task" in names else next((c for c in names if c.startswith("__index_level_")), None)
    if text_col is None or "task_index" not in names:
        raise LeRobotError(f"{path} has columns {names}; expected 'task_index' and the task string "
                           "(column 'task' or the pandas index)")
    tasks = dict(zip(table.column("task_index").to_pylist(), table.column(text_col).to_pylist()))
    return [tasks.get(i, "") for i in range(max(tasks) + 1)] if tasks else []


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class _Episode:
    index: int
    length: int
    data_file: Path
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # key -> (file, from_timestamp)


class _VideoCursor:
    """Frames of one camera at requested times, decoding each file front to back once (episodes in order).

    Every decoded frame is matched by its presentation time, so files written by any encoder (LeRobot
    concatenates per-episode videos; robodiff writes files in one pass) read the same way.
    """

    def __init__(self, root: Path, key: str, channels: int = 3):
        self.root, self.key = root, key
        self._format = "gray" if channels == 1 else "rgb24"
        self._path: Path | None = None
        self._container = None
        self._frames = None
        self._last = None  # (time, av.VideoFrame) decoded but not used yet

    def _open(self, path: Path) -> None:
        import av

        self.close()
        try:
            self._container = av.open(str(path))
            stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as exc:
            raise LeRobotError(f"{_fmt(path, self.root)}: not a readable video ({exc}); download the file again") from exc
        stream.thread_type = "AUTO"
        self._path, self._frames, self._last = path, self._container.decode(stream), None

    def read(self, path: Path, times: np.ndarray, where: str) -> np.ndarray:
        if path != self._path or (self._last is not None and times[0] < self._last[0] - TIMESTAMP_TOLERANCE_S):
            self._open(path)
        out = []
        for t in times:
            while self._last is None or self._last[0] < t - TIMESTAMP_TOLERANCE_S:
                frame = next(self._frames, None)
                if frame is None:
                    raise LeRobotError(
                        f"{_fmt(path, self.root)} ends before t={t:.4f} s, which {where} needs; the video is "
                        "shorter than meta/episodes says (re-download or re-encode the dataset)")
                if frame.time is not None:
                    self._last = (float(frame.time), frame)
            if abs(self._last[0] - t) > TIMESTAMP_TOLERANCE_S:
                raise LeRobotError(
                    f"{_fmt(path, self.root)} has no frame within {TIMESTAMP_TOLERANCE_S} s of t={t:.4f} s "
                    f"({where}; nearest {self._last[0]:.4f} s): its timestamps do not match the episode's "
                    "from_timestamp + timestamp; re-encode the videos at the dataset's fps")
            out.append(self._last[1].to_ndarray(format=self._format))
        frames = np.stack(out)
        return frames[..., None] if frames.ndim == 3 else frames

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = self._last = self._path = None


class LeRobotReader:
    """A checked LeRobotDataset v3.0 directory, read episode by episode into replay-buffer keys.

    The constructor validates everything cheap to validate (version, features, key map, tasks, the episode
    table, every referenced parquet file's columns and every referenced video file's existence) so a bad
    dataset fails before anything is written.
    """

    def __init__(self, root: str | os.PathLike, key_map: Mapping[str, str] | None = None):
        import pyarrow.parquet as pq

        self.root = root = Path(root)
        self.info = self._read_info()
        self.fps = self.info["fps"]
        feats = self.info["features"]
        self.video_keys = [k for k, f in feats.items() if f.get("dtype") == "video"]
        self.skipped = [k for k, f in feats.items() if f.get("dtype") == "string"]
        self.data_keys = [k for k, f in feats.items() if k not in FRAME_COLUMNS and k not in self.video_keys
                          and k not in self.skipped]
        key_map = dict(key_map or {})
        missing = [k for k in key_map if k not in feats]
        if missing:
            raise LeRobotError(f"--map names {missing}, which {_fmt(root / INFO_PATH, root)} does not list; "
                               f"its features are {sorted(feats)}")
        self.names = {k: key_map.get(k, import_name(k)) for k in self.data_keys + self.video_keys}
        clash = {n for n in self.names.values() if list(self.names.values()).count(n) > 1}
        if clash:
            raise LeRobotError(f"{root}: features {[k for k, n in self.names.items() if n in clash]} would all "
                               f"become {sorted(clash)}; give them distinct names with --map FEATURE=KEY")
        self.tasks = _read_tasks(root)
        self.episodes = self._read_episodes()
        needed = set(FRAME_COLUMNS) | set(self.data_keys)
        for path in sorted({e.data_file for e in self.episodes}):
            if not path.is_file():
                raise LeRobotError(f"{_fmt(path, root)} is missing (meta/episodes refers to it); download the "
                                   "dataset's data/ folder again")
            have = set(pq.read_schema(path).names)
            if needed - have:
                raise LeRobotError(f"{_fmt(path, root)} lacks columns {sorted(needed - have)} (it has "
                                   f"{sorted(have)}); a v3.0 frame file holds every non-video feature of "
                                   "meta/info.json plus timestamp, frame_index, episode_index, index, task_index")
        for e in self.episodes:
            for key, (path, _) in e.videos.items():
                if not path.is_file():
                    raise LeRobotError(f"{_fmt(path, root)} is missing (episode {e.index}'s {key} frames are in "
                                       "it); download the dataset's videos/ folder again")

    def _read_info(self) -> dict:
        root = self.root
        path = root / INFO_PATH
        if not root.is_dir():
            raise LeRobotError(f"LeRobot dataset {root} does not exist or is not a directory; check the path")
        if not path.is_file():
            if (root / "meta" / "episodes.jsonl").is_file() or (root / "meta_data").is_dir():
                raise LeRobotError(f"{root} is a LeRobot dataset older than v2.0 (no meta/info.json); {V21_FIX}")
            raise LeRobotError(f"{path} is missing; {root} is not a LeRobot dataset")
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LeRobotError(f"{path} is not valid JSON ({exc}); download meta/info.json again") from exc
        version = info.get("codebase_version")
        if version != CODEBASE_VERSION:
            raise LeRobotError(f"{path}: codebase_version is {version!r}; robodiff reads LeRobotDataset "
                               f"{CODEBASE_VERSION} only; {V21_FIX}")
        for key in ("fps", "features", "data_path"):
            if key not in info:
                raise LeRobotError(f"{path} has no {key!r}; a v3.0 info.json has fps, features, data_path, "
                                   "video_path, totals")
        for name, f in info["features"].items():
            f["shape"] = tuple(f.get("shape") or (1,))
            if f.get("dtype") in ("video", "image") and len(f["shape"]) != 3:
                raise LeRobotError(f"{path}: feature {name!r} ({f['dtype']}) has shape {list(f['shape'])}; "
                                   "expected [height, width, channels]")
        if any(f.get("dtype") == "video" for f in info["features"].values()) and not info.get("video_path"):
            raise LeRobotError(f"{path} has video features but no video_path template")
        return info

    def _read_episodes(self) -> list[_Episode]:
        import pyarrow.parquet as pq

        root = self.root
        files = sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        if not files:
            raise LeRobotError(f"{root / EPISODES_DIR} holds no chunk-XXX/file-XXX.parquet; a v3.0 dataset "
                               "lists its episodes there (download the dataset's meta/ folder again)")
        need = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        for k in self.video_keys:
            need += [f"videos/{k}/chunk_index", f"videos/{k}/file_index", f"videos/{k}/from_timestamp"]
        rows = []
        for path in files:
            have = pq.read_schema(path).names
            missing = [c for c in need if c not in have]
            if missing:
                raise LeRobotError(f"{_fmt(path, root)} lacks columns {missing}; a v3.0 episode table has "
                                   "episode_index, length, data/chunk_index, data/file_index and per video key "
                                   "videos/<key>/chunk_index, file_index, from_timestamp, to_timestamp")
            rows += pq.read_table(path, columns=need).to_pylist()
        rows.sort(key=lambda r: r["episode_index"])
        out = []
        for r in rows:
            e = _Episode(int(r["episode_index"]), int(r["length"]), root / self.info["data_path"].format(
                chunk_index=r["data/chunk_index"], file_index=r["data/file_index"]))
            for k in self.video_keys:
                e.videos[k] = (root / self.info["video_path"].format(
                    video_key=k, chunk_index=r[f"videos/{k}/chunk_index"], file_index=r[f"videos/{k}/file_index"]),
                    float(r[f"videos/{k}/from_timestamp"]))
            out.append(e)
        return out

    @property
    def n_episodes(self) -> int:
        return len(self.episodes)

    @property
    def n_frames(self) -> int:
        return sum(e.length for e in self.episodes)

    def attrs(self, episode_tasks: list[int]) -> dict:
        """What a replay buffer keeps of the dataset beyond its arrays (so an export gives it back)."""
        return {ATTRS_KEY: {"fps": self.fps, "tasks": self.tasks, "episode_task_index": episode_tasks,
                            "robot_type": self.info.get("robot_type"), "source": str(self.root),
                            "skipped_features": self.skipped,
                            "features": {self.names[k]: k for k in self.names}}}

    def iter_episodes(self, episodes: list[int] | None = None, videos: bool = True
                      ) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """(replay-buffer episode dict, task_index of its first frame) for every episode (or the positions in
        ``episodes``), in order; ``videos=False`` skips decoding the cameras (low-dim keys only)."""
        import pyarrow.parquet as pq

        feats = self.info["features"]
        video_keys = self.video_keys if videos else []
        cursors = {k: _VideoCursor(self.root, k, feats[k]["shape"][-1]) for k in video_keys}
        table, table_path, ep_col = None, None, None
        selected = self.episodes if episodes is None else [self.episodes[i] for i in episodes]
        try:
            for e in selected:
                if e.data_file != table_path:
                    table_path = e.data_file
                    table = pq.read_table(table_path, columns=list(FRAME_COLUMNS) + self.data_keys)
                    ep_col = table.column("episode_index").to_numpy()
                where = f"{_fmt(table_path, self.root)}, episode {e.index}"
                rows = np.flatnonzero(ep_col == e.index)
                ep = table.take(rows)
                frame_index = ep.column("frame_index").to_numpy()
                order = np.argsort(frame_index, kind="stable")
                if len(rows) != e.length or not np.array_equal(frame_index[order], np.arange(e.length)):
                    raise LeRobotError(f"{where}: {len(rows)} frames with frame_index "
                                       f"{frame_index[order][:3].tolist()}..., but meta/episodes gives length "
                                       f"{e.length}; the data file is incomplete (download it again)")
                out = {}
                for k in self.data_keys:
                    f = feats[k]
                    if f["dtype"] == "image":
                        out[self.names[k]] = self._decode_images(ep.column(k), where)[order]
                    else:
                        x = _column_to_numpy(ep.column(k), f["shape"], f["dtype"], f"{where}, column {k!r}")[order]
                        out[self.names[k]] = x[:, 0] if (f.get("info") or {}).get(SCALAR_SHAPE) == [] else x
                timestamps = ep.column("timestamp").to_numpy().astype(np.float64)[order]
                for k in video_keys:
                    path, t0 = e.videos[k]
                    out[self.names[k]] = cursors[k].read(path, t0 + timestamps, f"{where}, {k}")
                task = ep.column("task_index").to_numpy()[order]
                yield out, int(task[0]) if len(task) else 0
        finally:
            for c in cursors.values():
                c.close()

    @staticmethod
    def _decode_images(col, where: str) -> np.ndarray:
        """``image`` features: PNG/JPEG bytes in a struct column {bytes, path} (LeRobot's non-video images)."""
        import imageio.v3 as iio

        imgs = []
        for item in col.to_pylist():
            data = item.get("bytes") if isinstance(item, dict) else item
            if not data:
                raise LeRobotError(f"{where}: an image cell holds no bytes (only a path); embed the images "
                                   "in the parquet file")
            img = iio.imread(data)
            imgs.append(img[..., None] if img.ndim == 2 else img[..., :3])
        return np.stack(imgs)


def read_lerobot(src: str | os.PathLike, key_map: Mapping[str, str] | None = None,
                 dst: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = False) -> ReplayBuffer:
    """Import a LeRobot v3.0 dataset into a replay buffer: in memory (``dst=None``) or a new zarr directory.

    A zarr destination is filled episode by episode under a temporary name and renamed when complete.
    The dataset's fps, task strings and per-episode tasks go into ``rb.attrs["lerobot"]``.
    """
    reader = LeRobotReader(src, key_map)
    tmp = None
    if dst is not None:
        dst = Path(dst)
        if dst.exists() and not overwrite:
            raise LeRobotError(f"{dst} already exists; choose another destination or pass --overwrite")
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        rb = ReplayBuffer.create(tmp)
        tasks = []
        for ep, task in _progress(reader.iter_episodes(), progress, reader.n_episodes, "import episodes"):
            rb.add_episode(ep)
            tasks.append(task)
        rb.attrs.update(reader.attrs(tasks))
        if tmp is None:
            return rb
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        os.replace(tmp, dst)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp)
    return ReplayBuffer.open(dst, mode="r")


def _progress(it, enabled: bool, total: int, desc: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="ep")


# ---------------------------------------------------------------------------------------------- writing
def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


class _VideoWriter:
    """One camera's mp4 files: episodes appended back to back, a new file when the size limit is reached."""

    def __init__(self, root: Path, key: str, fps: int, vcodec: str, crf: int, gop: int, pix_fmt: str,
                 limit_mb: float, chunks_size: int):
        self.root, self.key, self.fps = root, key, fps
        self.encoder, self.pix_fmt, self.limit = VIDEO_CODECS[vcodec], pix_fmt, limit_mb * 1024 * 1024
        self.options = {"crf": str(crf), "g": str(gop)}
        if vcodec == "av1":
            self.options.update({"preset": "12", "svtav1-params": "log-level=1"})
        self.chunks_size = chunks_size
        self.chunk, self.file = 0, -1
        self._container = self._stream = None
        self.bytes = self.frames = self.packets = 0

    def _roll(self, h: int, w: int) -> None:
        import av

        self.close()
        self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size) if self.file >= 0 else (0, 0)
        path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), "w")
        options = dict(self.options)
        if self.encoder == "libx264":
            # x264's frame threads cost more than they save on small frames (96x96 Push-T: 3x slower with
            # its default thread count than with one, measured); one thread per ~0.1 Mpixel, as many as cores
            options["threads"] = str(max(1, min(os.cpu_count() or 1, h * w // 100_000)))
        self._stream = self._container.add_stream(self.encoder, rate=self.fps, options=options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, self.pix_fmt
        self.bytes = self.frames = self.packets = 0

    def add_episode(self, frames: np.ndarray) -> dict:
        import av

        n, h, w = frames.shape[:3]
        # the encoder holds frames back (lookahead), so project the size from the packets out so far
        per_frame = self.bytes / self.packets if self.packets else 0
        if self._container is None or self.bytes + per_frame * (self.frames - self.packets + n) >= self.limit:
            self._roll(h, w)
        start = self.frames
        fmt = "rgb24" if frames.shape[-1] == 3 else "gray"
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img if fmt == "rgb24" else img[..., 0]), format=fmt)
            frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
            self._mux(self._stream.encode(frame))
            self.frames += 1
        p = f"videos/{self.key}/"
        return {p + "chunk_index": self.chunk, p + "file_index": self.file,
                p + "from_timestamp": start / self.fps, p + "to_timestamp": self.frames / self.fps}

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes += packet.size
            self.packets += 1
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            self._mux(self._stream.encode(None))
            self._container.close()
        self._container = self._stream = None

    def info(self, shape: tuple[int, ...], vcodec: str) -> dict:
        """The ``info`` block LeRobot keeps per video feature in meta/info.json."""
        h, w, c = (int(v) for v in shape)
        return {"video.height": h, "video.width": w, "video.codec": vcodec, "video.pix_fmt": self.pix_fmt,
                "video.is_depth_map": False, "video.fps": self.fps, "video.channels": c, "has_audio": False}


def check_encoder(vcodec: str, pix_fmt: str, shape: tuple[int, ...], key: str) -> None:
    """Fail before writing when the PyAV build lacks the encoder or the frame size does not suit the format."""
    import av

    if vcodec not in VIDEO_CODECS:
        raise LeRobotError(f"--vcodec {vcodec!r}: choose one of {sorted(VIDEO_CODECS)}")
    if VIDEO_CODECS[vcodec] not in av.codecs_available:
        have = [n for n, e in VIDEO_CODECS.items() if e in av.codecs_available]
        raise LeRobotError(f"this PyAV build has no {VIDEO_CODECS[vcodec]} encoder for --vcodec {vcodec}; "
                           f"use --vcodec {have[0] if have else 'h264'} (available here: {have})")
    h, w, c = shape
    if c not in (1, 3):
        raise LeRobotError(f"image key {key!r} has {c} channels; LeRobot videos hold 1 (gray) or 3 (RGB)")
    if pix_fmt == "yuv420p" and (h % 2 or w % 2):
        raise LeRobotError(f"image key {key!r} is {h}x{w}; yuv420p video needs even sizes: pass --pix-fmt yuv444p")


def write_lerobot(rb: ReplayBuffer, dst: str | os.PathLike, *, key_map: Mapping[str, str] | None = None,
                  fps: int | None = None, task: str | None = None, vcodec: str = "h264", crf: int | None = None,
                  gop: int = 2, pix_fmt: str = "yuv420p", robot_type: str | None = None,
                  data_files_size_in_mb: float = DEFAULT_DATA_FILE_MB,
                  video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_MB, chunks_size: int = DEFAULT_CHUNKS_SIZE,
                  overwrite: bool = False, progress: bool = False) -> Path:
    """Export ``rb`` as a LeRobotDataset v3.0 directory at ``dst`` (built in a temporary folder, then renamed).

    Image keys (uint8 ``(T, H, W, C)``) become videos, every other key a parquet column. fps and task strings
    come from ``rb.attrs["lerobot"]`` (an imported dataset) unless given; a buffer without them gets ``fps``
    (default 10, Push-T's control rate) and one ``task`` for every episode (default: the buffer's name).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise LeRobotError(f"{dst} already exists; choose another destination or pass --overwrite")
    meta = dict(rb.attrs.get(ATTRS_KEY) or {})
    fps = int(fps or meta.get("fps") or 10)
    keys = rb.keys()
    if rb.n_episodes == 0:
        raise LeRobotError(f"{rb.path or 'the buffer'} has no episodes; nothing to export")
    key_map = dict(key_map or {})
    missing = [k for k in key_map if k not in keys]
    if missing:
        raise LeRobotError(f"--map names {missing}, which {rb.path or 'the buffer'} does not hold; its keys are {keys}")
    images = [k for k in keys if rb[k].ndim == 4]
    for k in images:
        if rb[k].dtype != np.uint8:
            raise LeRobotError(f"image key {k!r} is {rb[k].dtype}; videos need uint8 0-255 images (convert with "
                               "the default --image-dtype uint8)")
        check_encoder(vcodec, pix_fmt, tuple(rb[k].shape[1:]), k)
    back = meta.get("features") or {}  # key -> feature name of an imported dataset: the names come back
    names = {k: key_map.get(k, back.get(k) or export_name(k, k in images, keys)) for k in keys}
    clash = [n for n in names.values() if list(names.values()).count(n) > 1 or n in FRAME_COLUMNS]
    if clash:
        raise LeRobotError(f"keys {[k for k in keys if names[k] in clash]} would be written as {sorted(set(clash))}, "
                           "which clash with each other or LeRobot's frame columns; rename them with --map KEY=FEATURE")
    if meta.get("tasks") and len(meta.get("episode_task_index", [])) == rb.n_episodes and not task:
        tasks, ep_tasks = list(meta["tasks"]), list(meta["episode_task_index"])
    else:
        tasks, ep_tasks = [task or (rb.path.stem if rb.path else "demonstration")], [0] * rb.n_episodes
    crf = DEFAULT_CRF[vcodec] if crf is None else int(crf)

    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    writers = {k: _VideoWriter(tmp, names[k], fps, vcodec, crf, gop, pix_fmt, video_files_size_in_mb, chunks_size)
               for k in images}
    lowdim = [k for k in keys if k not in images]
    features = {names[k]: {"dtype": str(rb[k].dtype), "shape": list(rb[k].shape[1:]) or [1], "names": None,
                           **({"info": {SCALAR_SHAPE: []}} if rb[k].ndim == 1 else {})} for k in lowdim}
    features.update({names[k]: {"dtype": "video", "shape": list(rb[k].shape[1:]),
                                "names": ["height", "width", "channels"]} for k in images})
    features.update(FRAME_FEATURES)
    schema = pa.schema([(names[k], _array_type(rb[k].dtype, tuple(rb[k].shape[1:]) or (1,))) for k in lowdim] +
                       [(c, pa.float32() if c == "timestamp" else pa.int64()) for c in FRAME_COLUMNS])
    try:
        tmp.mkdir(parents=True)
        data_writer, chunk, file, file_bytes = None, 0, 0, 0
        episode_rows, lowdim_all = [], {k: [] for k in lowdim}
        image_hist = {k: np.zeros((rb[k].shape[-1], 256), np.int64) for k in images}
        frame_all = {c: [] for c in FRAME_COLUMNS}
        start = 0
        ends = rb.episode_ends
        for i in _progress(range(rb.n_episodes), progress, rb.n_episodes, "export episodes"):
            ep = rb.get_episode(i)
            n = int(ends[i]) - start
            cols = {names[k]: _to_arrow(ep[k], tuple(rb[k].shape[1:]) or (1,)) for k in lowdim}
            cols.update({"timestamp": pa.array((np.arange(n) / fps).astype(np.float32)),  # as LeRobot computes it
                         "frame_index": pa.array(np.arange(n, dtype=np.int64)),
                         "episode_index": pa.array(np.full(n, i, np.int64)),
                         "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
                         "task_index": pa.array(np.full(n, ep_tasks[i], np.int64))})
            table = pa.table(cols, schema=schema)
            if data_writer is not None and file_bytes + table.nbytes >= data_files_size_in_mb * 1024 * 1024:
                data_writer.close()
                data_writer, (chunk, file) = None, _next_file(chunk, file, chunks_size)
            if data_writer is None:
                path = tmp / DATA_PATH.format(chunk_index=chunk, file_index=file)
                path.parent.mkdir(parents=True, exist_ok=True)
                data_writer, file_bytes = pq.ParquetWriter(path, schema, compression="snappy"), 0
            data_writer.write_table(table)
            file_bytes += table.nbytes
            row = {"episode_index": i, "tasks": [tasks[ep_tasks[i]]], "length": n,
                   "data/chunk_index": chunk, "data/file_index": file,
                   "dataset_from_index": start, "dataset_to_index": start + n}
            for k in images:
                row.update(writers[k].add_episode(ep[k]))
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            ep_stats = {names[k]: feature_stats(ep[k]) for k in lowdim}
            for k in images:
                hist = image_histogram(ep[k])
                ep_stats[names[k]] = histogram_stats(hist, n)
                image_hist[k] += hist
            for c in FRAME_COLUMNS:
                frame_all[c].append(cols[c].to_numpy())
                ep_stats[c] = feature_stats(frame_all[c][-1].reshape(n, 1))
            for fname, st in ep_stats.items():
                row.update({f"stats/{fname}/{s}": v for s, v in st.items()})
            episode_rows.append(row)
            for k in lowdim:
                lowdim_all[k].append(ep[k])
            start += n
        data_writer.close()
        for w in writers.values():
            w.close()
        for k, w in writers.items():
            features[names[k]]["info"] = w.info(rb[k].shape[1:], vcodec)

        stats = {names[k]: feature_stats(np.concatenate(v)) for k, v in lowdim_all.items()}
        stats.update({names[k]: histogram_stats(h, rb.n_steps) for k, h in image_hist.items()})
        stats.update({c: feature_stats(np.concatenate(v).reshape(-1, 1)) for c, v in frame_all.items()})

        ep_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
        _write_tasks(tmp / TASKS_PATH, tasks)
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type or meta.get("robot_type"),
            "total_episodes": rb.n_episodes, "total_frames": rb.n_steps, "total_tasks": len(tasks),
            "chunks_size": chunks_size, "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb, "fps": fps,
            "splits": {"train": f"0:{rb.n_episodes}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if images else None, "features": features,
        }
        (tmp / INFO_PATH).write_text(json.dumps(info, indent=4))
        (tmp / STATS_PATH).write_text(json.dumps(stats, indent=4))
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        os.replace(tmp, dst)
    finally:
        for w in writers.values():
            try:
                w.close()
            except Exception:  # already failing: the temporary folder is removed below either way
                pass
        if tmp.exists():
            shutil.rmtree(tmp)
    return dst
