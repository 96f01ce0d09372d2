"""Self-contained, atomically written training checkpoints that load without running code.

A checkpoint is one file holding only tensors, numbers, strings, lists and dicts, so it is read with
``torch.load(weights_only=True)``: unpickling cannot construct arbitrary objects, and nothing in it is ever
imported or instantiated by name (objects are rebuilt by explicit builders from the stored config).

Contents: ``format``/``format_version`` (checked on load), ``config`` (the resolved run config as a JSON
string), ``model`` and ``ema_model`` state dicts (the normalizer lives inside them as buffers), ``ema``
(EMA counters), ``optimizer``, ``lr_scheduler``, ``rng`` (python, numpy, torch, cuda), ``progress``
(step, epoch, batch within epoch) and ``metrics``.

Atomicity: the file is written to a temporary name in the same directory, flushed, fsync'ed and moved over
the target with ``os.replace``; a process killed at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "robodiff.checkpoint"
FORMAT_VERSION = 1
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or from an incompatible format; the message says what to do."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` via temp file + fsync + ``os.replace`` (never a half-written target)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temp_files(directory: str | os.PathLike) -> None:
    """Delete temp files a killed save left behind (they are never valid checkpoints)."""
    for p in Path(directory).glob(".*.tmp"):
        p.unlink(missing_ok=True)


def rng_state() -> dict:
    """Every global RNG the training loop draws from, as weights_only-loadable values."""
    np_state = np.random.get_state(legacy=True)
    py_state = random.getstate()
    state = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_checkpoint(config: dict, **parts) -> dict:
    """The checkpoint dict: header + resolved config + the given parts (state dicts, progress, metrics)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(config), **parts}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; ``ckpt["config"]`` comes back as a dict.

    Raises CheckpointError naming the file and the fix for a missing, truncated/corrupt, foreign or
    newer-format file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle with disallowed globals, ...
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is corrupt, truncated or not a robodiff checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Use another checkpoint from "
            f"{path.parent} (latest.ckpt or a top-k file)."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robodiff checkpoint (no '{FORMAT}' header)")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, this robodiff reads version {FORMAT_VERSION}; "
            f"evaluate it with the robodiff release that wrote it, or retrain"
        )
    try:
        ckpt["config"] = json.loads(ckpt["config"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: stored config is missing or not valid JSON ({exc})") from exc
    return ckpt


def load_module_state(module: torch.nn.Module, state: dict, path: str | os.PathLike, what: str = "model") -> None:
    """``load_state_dict(strict=True)`` with an error that names the checkpoint and the mismatching keys."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise CheckpointError(
            f"{path}: the stored {what} weights do not fit the model built from its config "
            f"({' '.join(first[:3])[:400]}); the checkpoint was written by an incompatible robodiff version"
        ) from exc



def load_model(path: str | os.PathLike, build_model, ema: bool = True,
               map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint dict) rebuilt as ``build_model(config, None)`` from the checkpoint alone.

    The builder is the one the run was trained with (called without a dataset: everything inference needs,
    normalizers included, is in the weights). ``ema=True`` takes the EMA weights when the run kept them.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    try:
        model = build_model(ckpt["config"], None)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its stored config does not build with this robodiff version "
                              f"({type(exc).__name__}: {exc})") from exc
    use_ema = ema and ckpt.get("ema_model") is not None
    load_module_state(model, ckpt["ema_model"] if use_ema else ckpt["model"], path, "EMA model" if use_ema else "model")
    return model.to(map_location).eval(), ckpt
