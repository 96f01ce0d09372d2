"""Episode-structured demonstration storage on zarr 3.

Layout (the reference's, so its data opens as is)::

    <root>/data/<key>          arrays of shape (n_steps, *step_shape), one row per control step
    <root>/meta/episode_ends   int64, exclusive end index of each episode

Why the write order matters: an episode is committed by appending its end index to
``meta/episode_ends``, which happens only after every data array holds its rows.  zarr's
LocalStore writes each chunk and metadata file atomically (temp file + rename) from zarr-python
3.1.3 on (zarr-python PR #3412; earlier 3.x versions truncate and rewrite files in place), so a
writer killed at any point leaves every committed episode intact; at worst the data arrays are
longer than ``episode_ends[-1]`` (a *partial tail*), which :meth:`ReplayBuffer.open` detects,
reports and, in append mode, trims.  Appending with an older zarr is refused.

Anything else that disagrees with ``meta/episode_ends`` -- an array shorter than the last
episode end, episode ends that do not increase -- cannot come from an interrupted append: it is
*corruption* and raises :class:`ReplayBufferCorruptError` in read and append mode alike, without
writing anything; ``robodiff data repair SRC DST`` (:func:`repair`) writes a repaired copy.

Two backends share one API: a zarr group (a directory store, zip store or zarr's memory
store) and plain numpy arrays for fast in-memory sampling (:meth:`copy_to_memory`).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import zarr
import zarr.storage
from zarr.codecs import BloscCodec

log = logging.getLogger(__name__)

CHUNK_BYTES = 2 << 20  # ~2 MiB of raw data per chunk: cheap to rewrite on append, big enough to compress well
MAX_CHUNK_STEPS = 16384
ATOMIC_ZARR = (3, 1, 3)  # first zarr-python whose LocalStore writes every file atomically


class ReplayBufferError(ValueError):
    """Bad input to or from a replay buffer. The message names the key/path and the fix."""


class ReplayBufferCorruptError(ReplayBufferError):
    """A store whose arrays disagree with ``meta/episode_ends`` in a way no interrupted append leaves."""


def require_atomic_zarr(version: str | None = None) -> None:
    """Refuse to write with a zarr-python older than 3.1.3: its non-atomic chunk writes could leave a
    half-written chunk of *committed* episodes after a crash, which no recovery can tell apart."""
    version = zarr.__version__ if version is None else version
    parts = []
    for p in version.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, p))
        parts.append(int(digits or 0))
    if tuple(parts) < ATOMIC_ZARR:
        need = ".".join(map(str, ATOMIC_ZARR))
        raise ReplayBufferError(
            f"zarr {version} is installed; writing a replay buffer needs zarr>={need}, whose stores write "
            f"each chunk atomically (older versions rewrite chunks in place, so a crash can damage committed "
            f"episodes). Fix: pip install 'zarr>={need}'"
        )


def default_compressor() -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def default_chunks(step_shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    step_bytes = int(np.prod(step_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    steps = int(np.clip(CHUNK_BYTES // max(step_bytes, 1), 1, MAX_CHUNK_STEPS))
    return (steps, *step_shape)


def _open_store(path: Path, mode: str):
    """A zarr store for ``path``: a zip file or a directory (zarr format 2 or 3)."""
    if path.suffix == ".zip":
        return zarr.storage.ZipStore(path, mode="r" if mode == "r" else "w")
    return zarr.storage.LocalStore(path, read_only=(mode == "r"))


class _NumpyColumn:
    """A growable numpy array (amortised doubling) exposing the valid rows only."""

    def __init__(self, step_shape, dtype):
        self._buf = np.empty((0, *step_shape), dtype=dtype)
        self._n = 0

    def append(self, rows: np.ndarray) -> None:
        need = self._n + len(rows)
        if need > len(self._buf):
            grown = np.empty((max(need, 2 * len(self._buf)), *self._buf.shape[1:]), self._buf.dtype)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = rows
        self._n = need

    def truncate(self, n: int) -> None:
        self._n = n

    @property
    def array(self) -> np.ndarray:
        return self._buf[: self._n]


class ReplayBuffer:
    """Demonstration episodes stored column-wise, appended one whole episode at a time.

    Use :meth:`create` for a new buffer and :meth:`open` for an existing one; ``rb[key]``
    gives an array-like of all steps of ``key`` (numpy slicing returns ``np.ndarray``).
    """

    def __init__(self, *, group=None, columns=None, ends=None, read_only=False, path=None):
        self._group = group  # zarr backend
        self._columns: dict[str, _NumpyColumn] | None = columns  # numpy backend
        self._ends_np = ends  # numpy backend episode_ends
        self.read_only = read_only
        self.path = path
        self.recovered_tail: dict[str, int] = {}
        self._n_committed = 0
        self._attrs: dict = {}  # numpy backend's attrs

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike | None = None, overwrite: bool = False) -> "ReplayBuffer":
        """A new empty buffer: in memory (numpy) when ``path`` is None, else a zarr 3 store."""
        if path is None:
            return cls(columns={}, ends=_NumpyColumn((), np.int64))
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise ReplayBufferError(
                    f"{path} already exists; open it with ReplayBuffer.open(path, mode='a') to append, "
                    "or pass overwrite=True to replace it"
                )
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        require_atomic_zarr()
        root = zarr.open_group(_open_store(path, "w"), mode="w", zarr_format=3)
        root.create_group("data")
        meta = root.create_group("meta")
        meta.create_array("episode_ends", shape=(0,), chunks=(MAX_CHUNK_STEPS,), dtype=np.int64,
                          compressors=None, fill_value=0)
        return cls(group=root, path=path)

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> "ReplayBuffer":
        """Open an existing buffer: ``mode='r'`` read-only, ``'a'`` to append.

        Reads zarr format 2 (the reference's data) and 3, directories and ``.zip`` files.
        A partial tail left by a killed writer is reported and, in ``'a'`` mode, trimmed; a corrupt
        store raises :class:`ReplayBufferCorruptError` and is not touched.
        """
        if mode not in ("r", "a"):
            raise ReplayBufferError(f"mode must be 'r' (read) or 'a' (append), got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise ReplayBufferError(
                f"replay buffer {path} does not exist; check the path "
                "(create a new one with ReplayBuffer.create(path))"
            )
        if path.suffix == ".zip" and mode == "a":
            raise ReplayBufferError(
                f"{path} is a zip store, which cannot be appended to safely; convert it first: "
                f"robodiff data convert {path} {path.with_suffix('.zarr')}"
            )
        if mode == "a":
            require_atomic_zarr()
        try:
            root = zarr.open_group(_open_store(path, mode), mode="r" if mode == "r" else "r+")
        except Exception as exc:  # zarr raises several types for "not a zarr store"
            raise ReplayBufferError(f"{path} is not a zarr store ({exc}); expected a replay buffer "
                                    "with data/<key> arrays and meta/episode_ends") from exc
        if "data" not in root or "meta" not in root or "episode_ends" not in root["meta"]:
            raise ReplayBufferError(
                f"{path} is a zarr store but not a replay buffer: it needs groups 'data' and "
                f"'meta' with array 'meta/episode_ends' (found {sorted(root.keys())})"
            )
        rb = cls(group=root, read_only=(mode == "r"), path=path)
        rb._recover()
        return rb

    @classmethod
    def from_dict(cls, episodes: Iterable[Mapping[str, np.ndarray]]) -> "ReplayBuffer":
        rb = cls.create(None)
        for ep in episodes:
            rb.add_episode(ep)
        return rb

    # ------------------------------------------------------------------ crash recovery
    def _recover(self) -> None:
        """Detect (and in append mode trim) what a killed writer left after the last commit; refuse
        corruption before writing anything."""
        ends_arr = self._group["meta/episode_ends"]
        data = self._group["data"]
        lengths = {k: data[k].shape[0] for k in data.array_keys()}
        ok = check_consistency(np.asarray(ends_arr[:], dtype=np.int64), lengths, self.path)
        n_steps = int(ends_arr[ok - 1]) if ok else 0
        bad_ends = ends_arr.shape[0] - ok
        self.recovered_tail = {k: n - n_steps for k, n in lengths.items() if n != n_steps}
        if bad_ends:
            self.recovered_tail["meta/episode_ends"] = bad_ends
        self._n_committed = ok
        if not self.recovered_tail:
            return
        msg = (f"replay buffer {self.path}: found an uncommitted partial tail from an interrupted write "
               f"(extra rows per array: {self.recovered_tail}); the {ok} committed episodes are intact")
        if self.read_only:
            warnings.warn(msg + "; open with mode='a' to trim it", stacklevel=3)
            return
        warnings.warn(msg + "; trimmed it", stacklevel=3)
        if bad_ends:
            ends_arr.resize((ok,))
        if ok == 0:  # nothing committed: drop half-created arrays so keys can be chosen afresh
            for k in list(data.array_keys()):
                del data[k]
        else:
            for k, n in lengths.items():
                if n != n_steps:
                    data[k].resize((n_steps, *data[k].shape[1:]))
        if self.path is not None and self.path.is_dir():
            for partial in self.path.rglob("*.partial"):
                partial.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    @property
    def backend(self) -> str:
        return "numpy" if self._columns is not None else "zarr"

    def keys(self) -> list[str]:
        if self._columns is not None:
            return list(self._columns)
        return sorted(self._group["data"].array_keys())

    @property
    def attrs(self):
        """Dataset-level metadata (e.g. fps and task strings of an imported LeRobot dataset): a mutable
        mapping of JSON values, stored as the zarr root group's attributes; kept by copies and saves."""
        return self._attrs if self._group is None else self._group.attrs

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __getitem__(self, key: str):
        if key not in self.keys():
            raise KeyError(f"replay buffer has no key {key!r}; keys are {self.keys()}")
        if self._columns is not None:
            return self._columns[key].array
        return self._group["data"][key]

    @property
    def episode_ends(self) -> np.ndarray:
        if self._ends_np is not None:
            return self._ends_np.array.copy()
        return np.asarray(self._group["meta/episode_ends"][: self._n_committed], dtype=np.int64)

    @property
    def n_episodes(self) -> int:
        return len(self._ends_np.array) if self._ends_np is not None else self._n_committed

    @property
    def n_steps(self) -> int:
        ends = self.episode_ends
        return int(ends[-1]) if len(ends) else 0

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_ends, prepend=0)

    def __len__(self) -> int:
        return self.n_episodes

    def episode_slice(self, i: int) -> slice:
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range: buffer has {n} episodes")
        i %= n
        ends = self.episode_ends
        return slice(int(ends[i - 1]) if i > 0 else 0, int(ends[i]))

    def get_episode(self, i: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        s = self.episode_slice(i)
        return {k: np.asarray(self[k][s]) for k in (keys or self.keys())}

    def info(self) -> dict:
        """A summary for people and for ``robodiff data info --json``."""
        keys = {}
        for k in self.keys():
            a = self[k]
            entry = {"shape": [self.n_steps, *a.shape[1:]], "dtype": str(a.dtype)}
            if self._group is not None:
                entry["chunks"] = list(a.chunks)
                entry["compressor"] = _describe_codecs(a)
            keys[k] = entry
        lengths = self.episode_lengths
        return {
            "path": str(self.path) if self.path else None,
            "backend": self.backend,
            "zarr_format": self._group.metadata.zarr_format if self._group is not None else None,
            "n_episodes": self.n_episodes,
            "n_steps": self.n_steps,
            "episode_length": ({"min": int(lengths.min()), "max": int(lengths.max()),
                                "mean": float(lengths.mean())} if len(lengths) else None),
            "keys": keys,
        }

    # ------------------------------------------------------------------ writing
    def _check_writable(self) -> None:
        if self.read_only:
            raise ReplayBufferError(
                f"replay buffer {self.path} is open read-only; open it with mode='a' to append"
            )

    def _validate_episode(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(data, Mapping) or not data:
            raise ReplayBufferError("an episode must be a non-empty dict {key: array of shape (T, ...)}")
        arrays = {k: np.asarray(v) for k, v in data.items()}
        for k, a in arrays.items():
            if a.ndim == 0:
                raise ReplayBufferError(f"episode key {k!r} is a scalar; every value must have a leading time axis (T, ...)")
            if a.dtype == object or a.dtype.kind in "USV":
                raise ReplayBufferError(f"episode key {k!r} has dtype {a.dtype}; use a numeric dtype")
        lengths = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ReplayBufferError(
                f"episode arrays have different lengths {lengths}; every key needs one row per step"
            )
        if next(iter(lengths.values())) == 0:
            raise ReplayBufferError("episode has 0 steps; nothing to add")
        existing = self.keys()
        if existing:
            missing, extra = set(existing) - set(arrays), set(arrays) - set(existing)
            if missing or extra:
                raise ReplayBufferError(
                    f"episode keys do not match the buffer: missing {sorted(missing)}, extra {sorted(extra)}; "
                    f"the buffer stores {existing}"
                )
            for k, a in arrays.items():
                ref = self[k]
                if a.shape[1:] != tuple(ref.shape[1:]):
                    raise ReplayBufferError(
                        f"key {k!r}: per-step shape {a.shape[1:]} does not match the buffer's "
                        f"{tuple(ref.shape[1:])} (episode array shape {a.shape})"
                    )
                if not np.can_cast(a.dtype, ref.dtype, "same_kind"):
                    raise ReplayBufferError(
                        f"key {k!r}: dtype {a.dtype} cannot be stored in the buffer's {ref.dtype}; "
                        f"convert it first (e.g. arr.astype({str(ref.dtype)!r}))"
                    )
        for k, a in arrays.items():
            if a.dtype.kind in "fc" and not np.isfinite(a).all():
                bad = np.argwhere(~np.isfinite(a))[0]
                raise ReplayBufferError(
                    f"key {k!r} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
                    "clean the data before adding the episode"
                )
        return arrays

    def add_episode(self, data: Mapping[str, np.ndarray], chunks: Mapping[str, tuple] | None = None,
                    compressors: Mapping[str, object] | None = None) -> int:
        """Append one episode; it becomes visible only when all its arrays are written.

        Validates everything first, so bad input raises :class:`ReplayBufferError` and writes
        nothing. ``chunks``/``compressors`` apply per key when the key's array is created.
        Returns the new episode's index.
        """
        self._check_writable()
        arrays = self._validate_episode(data)
        T = next(iter(arrays.values())).shape[0]
        new_end = self.n_steps + T
        if self._columns is not None:
            for k, a in arrays.items():
                col = self._columns.setdefault(k, _NumpyColumn(a.shape[1:], a.dtype))
                col.append(a.astype(col.array.dtype, copy=False))
            self._ends_np.append(np.array([new_end]))
            return self.n_episodes - 1
        data_group = self._group["data"]
        for k, a in arrays.items():
            if k not in data_group:
                data_group.create_array(
                    k, shape=(0, *a.shape[1:]), dtype=a.dtype,
                    chunks=(chunks or {}).get(k) or default_chunks(a.shape[1:], a.dtype),
                    compressors=(compressors or {}).get(k, default_compressor()),
                )
            arr = data_group[k]
            arr.append(a.astype(arr.dtype, copy=False), axis=0)
        # Commit point: only now does the episode exist for readers.
        self._group["meta/episode_ends"].append(np.array([new_end], dtype=np.int64))
        self._n_committed += 1
        return self._n_committed - 1

    def pop_episode(self) -> dict[str, np.ndarray]:
        """Remove the last episode and return its data."""
        self._check_writable()
        if self.n_episodes == 0:
            raise ReplayBufferError("cannot pop an episode from an empty replay buffer")
        episode = self.get_episode(-1)
        n = self.n_episodes
        start = self.episode_slice(-1).start
        if self._columns is not None:
            for col in self._columns.values():
                col.truncate(start)
            self._ends_np.truncate(n - 1)
            return episode
        ends = self._group["meta/episode_ends"]
        # Zero the entry before shrinking: a later append that re-grows the array must never
        # expose this stale end index should it be killed between resize and write.
        ends[n - 1] = 0
        ends.resize((n - 1,))
        self._n_committed = n - 1
        for k in self.keys():
            a = self._group["data"][k]
            a.resize((start, *a.shape[1:]))
        return episode

    def drop_episode(self) -> None:
        """Remove the last episode (see :meth:`pop_episode`)."""
        self.pop_episode()

    # ------------------------------------------------------------------ copies
    def copy_to_memory(self, keys: Iterable[str] | None = None,
                       dtypes: Mapping[str, np.dtype] | None = None) -> "ReplayBuffer":
        """A numpy-backed copy (fast random access for sampling).

        ``dtypes`` casts keys while copying, chunk by chunk (e.g. the reference's float32
        images to uint8 without materialising 2.8 GB of float32).
        """
        keys = list(keys) if keys is not None else self.keys()
        for k in keys:
            if k not in self.keys():
                raise ReplayBufferError(f"replay buffer {self.path} has no key {k!r}; keys are {self.keys()}")
        n = self.n_steps
        columns = {}
        for k in keys:
            src = self[k]
            dtype = np.dtype((dtypes or {}).get(k, src.dtype))
            out = np.empty((n, *src.shape[1:]), dtype=dtype)
            step = src.chunks[0] if hasattr(src, "chunks") else max(n, 1)
            for a in range(0, n, step):
                block = np.asarray(src[a : min(a + step, n)])
                out[a : a + len(block)] = np.rint(block) if dtype.kind in "iu" and block.dtype.kind == "f" else block
            col = _NumpyColumn(out.shape[1:], dtype)
            col._buf, col._n = out, n
            columns[k] = col
        ends = _NumpyColumn((), np.int64)
        ends.append(self.episode_ends)
        out = ReplayBuffer(columns=columns, ends=ends)
        out.attrs.update(dict(self.attrs))
        return out

    def save(self, path: str | os.PathLike, overwrite: bool = False,
             chunks: Mapping[str, tuple] | None = None,
             compressors: Mapping[str, object] | None = None,
             keys: Iterable[str] | None = None) -> "ReplayBuffer":
        """Write a complete copy to ``path`` (a directory, or a ``.zip`` file); ``keys``: only these arrays.

        Written under a temporary name and renamed at the end, so an interrupted save never
        leaves a half-written buffer at ``path``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise ReplayBufferError(f"{path} already exists; choose another path or pass overwrite=True")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
        try:
            # Each array is written once, whole: zip stores cannot rewrite a member.
            root = zarr.open_group(_open_store(tmp, "w"), mode="w", zarr_format=3)
            root.attrs.update(dict(self.attrs))
            data = root.create_group("data")
            n = self.n_steps
            for k in self.keys() if keys is None else keys:
                src = self[k]
                step_shape = tuple(src.shape[1:])
                dst = data.create_array(
                    k, shape=(n, *step_shape), dtype=src.dtype,
                    chunks=(chunks or {}).get(k) or default_chunks(step_shape, src.dtype),
                    compressors=(compressors or {}).get(k, default_compressor()),
                )
                block = dst.chunks[0]
                for a in range(0, n, block):
                    dst[a : min(a + block, n)] = np.asarray(src[a : min(a + block, n)])
            meta = root.create_group("meta")
            ends = self.episode_ends
            meta.create_array("episode_ends", shape=ends.shape, chunks=(MAX_CHUNK_STEPS,), dtype=np.int64,
                              compressors=None, fill_value=0)[:] = ends
            if isinstance(root.store, zarr.storage.ZipStore):
                root.store.close()
            if path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        return ReplayBuffer.open(path, mode="r")

    def close(self) -> None:
        """Flush and release the store (needed for zip stores)."""
        if self._group is not None:
            store = self._group.store
            if isinstance(store, zarr.storage.ZipStore):
                store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"ReplayBuffer({where}, {self.n_episodes} episodes, {self.n_steps} steps, keys={self.keys()})"


def _describe_codecs(arr) -> str:
    """A short human-readable codec description, e.g. ``blosc(zstd, clevel=5, bitshuffle)``."""
    meta = arr.metadata
    codecs = [meta.compressor] if getattr(meta, "zarr_format", 3) == 2 else list(arr.compressors)
    parts = []
    for c in codecs:
        if c is None:
            continue
        cfg = c.get_config() if hasattr(c, "get_config") else c.to_dict().get("configuration", {})
        name = cfg.get("id") or type(c).__name__.replace("Codec", "").lower()
        cname, clevel, shuffle = cfg.get("cname"), cfg.get("clevel"), cfg.get("shuffle")
        shuffle = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}.get(shuffle, shuffle)
        detail = ", ".join(str(x) for x in (cname, f"clevel={clevel}" if clevel is not None else None, shuffle) if x is not None)
        parts.append(f"{name}({detail})" if detail else name)
    return " + ".join(parts) or "none"


def check_consistency(ends: np.ndarray, lengths: Mapping[str, int], path=None) -> int:
    """The number of committed episodes, after telling a partial tail from corruption.

    What an interrupted :meth:`ReplayBuffer.add_episode` can leave: data rows beyond the last committed end
    (data arrays are appended before the commit) and trailing ``episode_ends`` entries still at the fill
    value 0 (the array was grown but its chunk not yet written). Anything else raises
    :class:`ReplayBufferCorruptError` naming the key, the lengths and the fix.
    """
    ends = np.asarray(ends, dtype=np.int64)
    n = len(ends)
    while n and ends[n - 1] == 0:  # an end grown but not yet written: uncommitted
        n -= 1
    fix = (f"; nothing was changed. Write a repaired copy with `robodiff data repair {path or 'SRC'} DST` "
           f"(keeps the episodes every array holds) and use that")
    steps = np.diff(ends[:n], prepend=0)
    if n and (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        before = int(ends[i - 1]) if i else 0
        raise ReplayBufferCorruptError(
            f"replay buffer {path}: meta/episode_ends is not increasing: episode {i} ends at {int(ends[i])} "
            f"after {before} (episode_ends[:{min(n, i + 3)}] = {ends[:min(n, i + 3)].tolist()}); an "
            f"interrupted write cannot leave this, the store is corrupt{fix}")
    last = int(ends[n - 1]) if n else 0
    short = {k: m for k, m in lengths.items() if m < last}
    if short:
        k, m = min(short.items(), key=lambda kv: kv[1])
        raise ReplayBufferCorruptError(
            f"replay buffer {path}: data/{k} has {m} rows but meta/episode_ends commits {n} episodes ending at "
            f"step {last} (all lengths: {dict(lengths)}); an interrupted write cannot leave an array shorter "
            f"than the committed episodes, the store is corrupt{fix}")
    return n


def repair(src: str | os.PathLike, dst: str | os.PathLike, drop_keys: Iterable[str] = (),
           overwrite: bool = False) -> tuple["ReplayBuffer", dict]:
    """Write a consistent copy of a (possibly corrupt) buffer to ``dst``; ``src`` is only read.

    Keeps the longest run of episodes whose ends increase and that every kept array holds completely,
    i.e. the committed episodes a reader can trust; ``drop_keys`` leaves arrays out first (e.g. the one
    that lost rows, to keep every episode). Returns the new buffer and a report of what was dropped.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ReplayBufferError(f"repair writes a copy: DST must differ from SRC ({src})")
    if not src.exists():
        raise ReplayBufferError(f"replay buffer {src} does not exist; check the path")
    root = zarr.open_group(_open_store(src, "r"), mode="r")
    if "data" not in root or "meta" not in root or "episode_ends" not in root["meta"]:
        raise ReplayBufferError(f"{src} is not a replay buffer: it needs data/<key> arrays and meta/episode_ends")
    data = root["data"]
    unknown = sorted(set(drop_keys) - set(data.array_keys()))
    if unknown:
        raise ReplayBufferError(f"--drop-key {unknown}: {src} has no such keys (it has {sorted(data.array_keys())})")
    keys = [k for k in sorted(data.array_keys()) if k not in set(drop_keys)]
    lengths = {k: data[k].shape[0] for k in keys}
    ends = np.asarray(root["meta/episode_ends"][:], dtype=np.int64)
    limit = min(lengths.values()) if lengths else 0
    kept, prev = 0, 0
    for e in ends:
        if e <= prev or e > limit:
            break
        kept, prev = kept + 1, int(e)
    view = ReplayBuffer(group=root, read_only=True, path=src)  # not opened: open() would refuse it
    view._n_committed = kept
    report = {"episodes_in": int(len(ends)), "episodes_kept": kept, "steps_kept": prev,
              "dropped_keys": sorted(drop_keys), "lengths": lengths}
    return view.save(dst, overwrite=overwrite, keys=keys), report
