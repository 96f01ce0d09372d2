"""Conversions between demonstration formats.

Supported: replay buffers (zarr format 2 or 3 directories, ``.zip`` stores) and robomimic-format
HDF5 files (``data/demo_N/obs/<key>``, ``data/demo_N/actions``), the format robomimic, robosuite
and MimicGen datasets use.  Every writer goes through a temporary name and a rename, so an
interrupted conversion leaves nothing half-written at the destination.
"""

from __future__ import annotations

import os
import re
import uuid
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


def open_any(path: Path) -> ReplayBuffer:
    """A replay buffer from any supported source format."""
    if path.suffix in HDF5_SUFFIXES:
        return import_robomimic_hdf5(path)
    return ReplayBuffer.open(path, mode="r")


def convert(src: Path, dst: Path, image_dtype: str = "uint8", overwrite: bool = False) -> ReplayBuffer:
    """Copy ``src`` to ``dst``; formats follow the suffixes (see the module docstring).

    Image arrays (4-D: time, H, W, C) become uint8 unless ``image_dtype='keep'``; a float image
    with values outside [0, 255] or non-integral values is refused rather than silently rounded.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise ReplayBufferError(f"{dst} already exists; choose another destination or pass --overwrite")
    rb = open_any(src)
    if image_dtype == "uint8":
        casts = {k: np.uint8 for k in rb.keys() if rb[k].ndim == 4 and rb[k].dtype != np.uint8}
        for k in casts:
            probe = np.asarray(rb[k][: min(rb.n_steps, 64)])
            if probe.min() < 0 or probe.max() > 255 or not np.allclose(probe, np.rint(probe)):
                raise ReplayBufferError(
                    f"{src}: image key {k!r} ({rb[k].dtype}) is not 0-255 integral; "
                    "pass --image-dtype keep to copy it unchanged")
        rb = rb.copy_to_memory(dtypes=casts) if casts else rb
    if dst.suffix in HDF5_SUFFIXES:
        export_robomimic_hdf5(rb, dst)
        return import_robomimic_hdf5(dst)
    return rb.save(dst, overwrite=overwrite)
