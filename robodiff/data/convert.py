"""Conversions between demonstration formats.

Supported: replay buffers (zarr format 2 or 3 directories, ``.zip`` stores), robomimic-format
HDF5 files (``data/demo_N/obs/<key>``, ``data/demo_N/actions``), the format robomimic, robosuite
and MimicGen datasets use, and LeRobotDataset v3.0 directories (:mod:`robodiff.data.lerobot`).  Every writer goes through a temporary name and a rename, so an
interrupted conversion leaves nothing half-written at the destination.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robodiff.data.replay_buffer import ReplayBuffer, ReplayBufferError

HDF5_SUFFIXES = (".hdf5", ".h5")


def _demo_index(name: str) -> int:
    m = re.fullmatch(r"demo_(\d+)", name)
    return int(m.group(1)) if m else -1


def import_robomimic_hdf5(path: str | os.PathLike, obs_keys: list[str] | None = None,
                          action_key: str = "action") -> ReplayBuffer:
    """Read a robomimic-format HDF5 file into an in-memory ReplayBuffer.

    Each ``data/demo_N`` becomes one episode (in N order) with its ``obs/<key>`` arrays (all of
    them, or ``obs_keys``) and ``actions`` stored under ``action_key``.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise ReplayBufferError(f"robomimic file {path} does not exist; check the path")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ReplayBufferError(f"{path} is not a readable HDF5 file ({exc})") from exc
    with f:
        if "data" not in f:
            raise ReplayBufferError(f"{path} is not in robomimic format: it has no 'data' group "
                                    f"(top-level keys: {sorted(f.keys())})")
        demos = sorted((k for k in f["data"] if _demo_index(k) >= 0), key=_demo_index)
        if not demos:
            raise ReplayBufferError(f"{path}: group 'data' holds no demo_N groups (found {sorted(f['data'].keys())})")
        rb = ReplayBuffer.create(None)
        for name in demos:
            demo = f["data"][name]
            for required in ("obs", "actions"):
                if required not in demo:
                    raise ReplayBufferError(f"{path}: data/{name} has no '{required}' (it has {sorted(demo.keys())})")
            keys = obs_keys if obs_keys is not None else sorted(demo["obs"].keys())
            missing = [k for k in keys if k not in demo["obs"]]
            if missing:
                raise ReplayBufferError(f"{path}: data/{name}/obs lacks {missing}; available: {sorted(demo['obs'].keys())}")
            episode = {k: np.asarray(demo["obs"][k]) for k in keys}
            episode[action_key] = np.asarray(demo["actions"])
            try:
                rb.add_episode(episode)
            except ReplayBufferError as exc:
                raise ReplayBufferError(f"{path}: data/{name}: {exc}") from exc
    return rb


def export_robomimic_hdf5(rb: ReplayBuffer, path: str | os.PathLike, action_key: str = "action") -> Path:
    """Write ``rb`` as a robomimic-format HDF5 file (atomically)."""
    import h5py

    path = Path(path)
    if action_key not in rb.keys():
        raise ReplayBufferError(f"cannot export to robomimic format: the buffer has no {action_key!r} key "
                                f"(keys: {rb.keys()})")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            total = 0
            for i in range(rb.n_episodes):
                ep = rb.get_episode(i)
                g = data.create_group(f"demo_{i}")
                g.attrs["num_samples"] = len(ep[action_key])
                total += len(ep[action_key])
                g.create_dataset("actions", data=ep.pop(action_key))
                obs = g.create_group("obs")
                for k, v in ep.items():
                    obs.create_dataset(k, data=v, compression="gzip" if v.ndim >= 3 else None)
            data.attrs["total"] = total
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


FORMATS = ("zarr", "zip", "hdf5", "lerobot")


def detect_format(path: Path) -> str:
    """The format of an existing ``path``: a LeRobot dataset directory, a robomimic HDF5 file, a zip store or
    a zarr directory."""
    from robodiff.data.lerobot import is_lerobot_dataset

    if is_lerobot_dataset(path):
        return "lerobot"
    if path.suffix in HDF5_SUFFIXES:
        return "hdf5"
    return "zip" if path.suffix == ".zip" else "zarr"


def open_any(path: Path, key_map: dict | None = None, progress: bool = False) -> ReplayBuffer:
    """A replay buffer from any supported source format (a LeRobot dataset is decoded into memory)."""
    fmt = detect_format(Path(path))
    if fmt == "lerobot":
        from robodiff.data.lerobot import read_lerobot

        return read_lerobot(path, key_map, progress=progress)
    if key_map:
        raise ReplayBufferError(f"--map applies to LeRobot datasets; {path} is a {fmt} source")
    if fmt == "hdf5":
        return import_robomimic_hdf5(path)
    return ReplayBuffer.open(path, mode="r")


@dataclass
class Converted:
    """What :func:`convert` wrote (for the command's one-line report)."""

    path: Path
    format: str
    n_episodes: int
    n_steps: int
    keys: list[str]

    def summary(self) -> str:
        return f"wrote {self.path} ({self.format}): {self.n_episodes} episodes, {self.n_steps} steps, keys {self.keys}"


def _cast_images(rb: ReplayBuffer, src: Path) -> ReplayBuffer:
    """Float 0-255 image arrays (4-D: time, H, W, C) as uint8; anything else is refused, not rounded."""
    casts = {k: np.uint8 for k in rb.keys() if rb[k].ndim == 4 and rb[k].dtype != np.uint8}
    for k in casts:
        probe = np.asarray(rb[k][: min(rb.n_steps, 64)])
        if probe.min() < 0 or probe.max() > 255 or not np.allclose(probe, np.rint(probe)):
            raise ReplayBufferError(
                f"{src}: image key {k!r} ({rb[k].dtype}) is not 0-255 integral; "
                "pass --image-dtype keep to copy it unchanged")
    return rb.copy_to_memory(dtypes=casts) if casts else rb


def convert(src: Path, dst: Path, image_dtype: str = "uint8", overwrite: bool = False, to: str | None = None,
            key_map: dict | None = None, progress: bool = False, **lerobot_options) -> Converted:
    """Copy ``src`` to ``dst``. The source format is detected from its layout; the destination's is ``to``
    (``zarr``, ``zip``, ``hdf5``, ``lerobot``) or follows its suffix (``.zip``, ``.hdf5``/``.h5``, else zarr).

    Image arrays (4-D: time, H, W, C) become uint8 unless ``image_dtype='keep'``; a float image
    with values outside [0, 255] or non-integral values is refused rather than silently rounded.
    ``key_map`` renames keys of a LeRobot source or destination; ``lerobot_options`` go to
    :func:`robodiff.data.lerobot.write_lerobot` (fps, task, vcodec, crf, ...).
    """
    src, dst = Path(src), Path(dst)
    to = to or ("hdf5" if dst.suffix in HDF5_SUFFIXES else "zip" if dst.suffix == ".zip" else "zarr")
    if to not in FORMATS:
        raise ReplayBufferError(f"--to {to!r}: choose one of {FORMATS}")
    if dst.exists() and not overwrite:
        raise ReplayBufferError(f"{dst} already exists; choose another destination or pass --overwrite")
    if not src.exists():
        raise ReplayBufferError(f"{src} does not exist; check the path")
    if lerobot_options and to != "lerobot":
        raise ReplayBufferError(f"{sorted(lerobot_options)} apply to a LeRobot destination; add --to lerobot")
    src_fmt = detect_format(src)
    if key_map and "lerobot" not in (src_fmt, to):
        raise ReplayBufferError(f"--map renames LeRobot features; neither {src} nor the destination is a LeRobot "
                                "dataset (add --to lerobot to export one)")
    if to == "zarr" and src_fmt == "lerobot":
        # decoded straight into the destination, episode by episode (nothing held in memory)
        from robodiff.data.lerobot import read_lerobot

        rb = read_lerobot(src, key_map, dst=dst, overwrite=overwrite, progress=progress)
        return Converted(dst, to, rb.n_episodes, rb.n_steps, rb.keys())
    rb = open_any(src, key_map if src_fmt == "lerobot" else None, progress)
    if image_dtype == "uint8":
        rb = _cast_images(rb, src)
    if to == "lerobot":
        from robodiff.data.lerobot import write_lerobot

        if not lerobot_options.get("task") and not (rb.attrs.get("lerobot") or {}).get("tasks"):
            lerobot_options["task"] = src.stem  # a buffer without task strings: name them after the source
        write_lerobot(rb, dst, key_map=None if src_fmt == "lerobot" else key_map, overwrite=overwrite,
                      progress=progress, **lerobot_options)
    elif to == "hdf5":
        export_robomimic_hdf5(rb, dst)
    else:
        rb.save(dst, overwrite=overwrite)
    return Converted(dst, to, rb.n_episodes, rb.n_steps, rb.keys())
