"""Torch datasets of training windows over any recorded replay buffer (contract 3 batch format).

The task says what the policy observes; the dataset holds no task knowledge:

- observation keys come from the task's ``shape_meta["obs"]`` (or a plain list of keys); by default each
  is read from the buffer array of the same name, so a recording with ``camera_0``, ``camera_1``,
  ``agent_pos``, ... trains as recorded: any number of cameras (uint8 HWC arrays, 4-D) and any low-dim keys;
- ``obs_sources`` maps an observation key to where it comes from: a buffer key (``{"image": "img"}``)
  or an :class:`ObsSource` that derives it from several buffer arrays. A task's env package supplies its
  derived keys (Push-T's 20-dim keypoint observation: ``envs.pusht.dataset.OBS_SOURCES``); the composition
  root (scripts/train.py) resolves the task config's ``task.dataset.obs_sources`` and hands it over;
- units, frames and the action's meaning are ``shape_meta`` fields (``units: m``, ``frame: robot_base``,
  ...), carried unchanged into :meth:`SequenceDataset.shape_meta` and so into the checkpoint.

All arrays are derived once, held in memory and windowed by ``SequenceSampler``; a batch is a single
gather per key (``__getitems__``, which ``torch.utils.data.DataLoader`` calls with a whole batch of
indices), so data loading stays far below the cost of a training step.

Sample format: ``{"obs": {key: (T_obs, *shape)}, "action": (horizon, Da)}`` float32 tensors, T_obs =
``n_obs_steps`` (the policy conditions on the first ``n_obs_steps`` steps of the window; loading only those
is the sampler's ``key_first_k``). Images (4-D arrays, HWC) come out as float CHW in [0, 1].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from robodiff.data.sampler import SequenceSampler, downsample_mask, get_val_mask


class DatasetError(ValueError):
    """A dataset that cannot serve the task (missing key, wrong shape, no episodes); the message says why."""


@dataclass(frozen=True)
class ObsSource:
    """How one observation key is derived from the buffer's arrays."""

    needs: Tuple[str, ...]  # buffer keys it reads
    derive: Callable[[Mapping[str, np.ndarray]], np.ndarray]  # buffer arrays -> (N, *shape) stored array
    what: str  # for error messages


ObsSources = Mapping[str, Union[ObsSource, str]]


def _source(key: str, sources: Optional[ObsSources]) -> ObsSource:
    """The ObsSource of observation ``key``: given, a renamed buffer key, or the buffer key of that name."""
    src = (sources or {}).get(key, key)
    if isinstance(src, ObsSource):
        return src
    if not isinstance(src, str):
        raise DatasetError(f"obs_sources[{key!r}] must be a buffer key (str) or an ObsSource, got {src!r}")
    return ObsSource((src,), lambda a, s=src: a[s], f"buffer array {src!r}")


def _is_image(arr: np.ndarray) -> bool:
    """Images are per-step HWC arrays (4-D overall); everything else is low-dim."""
    return arr.ndim == 4


def _read_array(arr, n: int, chunk: int = 2048) -> np.ndarray:
    """First n rows in memory; float images (the reference stores img as float32 0-255) become uint8."""
    if len(arr.shape) == 4 and np.dtype(arr.dtype) != np.uint8:
        out = np.empty(arr.shape, dtype=np.uint8)
        for a in range(0, n, chunk):  # chunked: never materialise the 2.8 GB float32 copy
            out[a : a + chunk] = np.clip(np.rint(np.asarray(arr[a : a + chunk])), 0, 255)
        return out
    return np.asarray(arr[:n])


def open_buffer(source):
    """A ReplayBuffer from a path (zarr directory / .zip) or an already open buffer."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"dataset not found: {path}. Pass an existing zarr replay buffer (e.g. the reference "
                f"pusht_cchi_v7_replay.zarr) or collect one with scripts/collect_pusht.py."
            )
        from robodiff.data.replay_buffer import ReplayBuffer

        return ReplayBuffer.open(str(path), mode="r")
    return source


class SequenceDataset(torch.utils.data.Dataset):
    """Windows of (obs, action) over a replay buffer for one task.

    ``source``: path or ReplayBuffer. ``obs``: the task's ``shape_meta`` (its ``obs`` keys are observed,
    their shapes checked against the data, their units kept) or a list of observation keys.
    ``obs_sources``: see the module docstring. The train split is the complement of
    ``get_val_mask(n, val_ratio, seed)``, downsampled to ``max_train_episodes``; ``get_validation_dataset()``
    gives the held-out episodes.
    """

    def __init__(
        self,
        source,
        obs: Union[Mapping, Sequence[str]],
        horizon: int = 16,
        n_obs_steps: int = 2,
        pad_before: Optional[int] = None,
        pad_after: Optional[int] = None,
        n_action_steps: int = 8,
        val_ratio: float = 0.0,
        max_train_episodes: Optional[int] = None,
        seed: int = 42,
        task_name: str = "task",
        obs_sources: Optional[ObsSources] = None,
    ):
        rb = open_buffer(source)
        self.source_name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
        want = obs if isinstance(obs, Mapping) and "obs" in obs else None
        obs_keys = list(want["obs"]) if want is not None else list(obs)
        if not obs_keys:
            raise DatasetError(f"{task_name}: no observation keys (task.shape_meta.obs is empty)")
        keys = set(rb.keys())
        need = {"action": _source("action", None)}
        need.update({k: _source(k, obs_sources) for k in obs_keys})
        for what, src in need.items():
            missing = [k for k in src.needs if k not in keys]
            if missing:
                raise DatasetError(
                    f"dataset {self.source_name} has no key {missing[0]!r} (it has {sorted(keys)}); "
                    f"task {task_name!r} needs {missing} for {what!r}: {src.what}. Record that key, or map "
                    f"{what!r} to an existing one in task.dataset.obs_sources"
                )
        n_steps = int(rb.n_steps)
        raw = {k: _read_array(rb[k], n_steps) for k in sorted({n for src in need.values() for n in src.needs})}
        self.arrays = {}
        for k, src in need.items():
            arr = np.asarray(src.derive(raw))
            # images stay uint8 HWC in memory (0.7 GB for the reference data instead of 2.8 GB as float32);
            # conversion to float CHW happens per batch in __getitems__
            self.arrays[k] = arr if _is_image(arr) else arr.astype(np.float32, copy=False)
        del raw
        self.obs_keys = obs_keys
        self.image_keys = frozenset(k for k in obs_keys if _is_image(self.arrays[k]))
        self._meta = _merge_meta(self._data_meta(), want, self.source_name, task_name)
        self.episode_ends = np.asarray(rb.episode_ends, dtype=np.int64)
        if len(self.episode_ends) == 0:
            raise DatasetError(f"dataset {self.source_name} has no episodes")
        self.horizon, self.n_obs_steps = int(horizon), int(n_obs_steps)
        self.pad_before = n_obs_steps - 1 if pad_before is None else int(pad_before)
        self.pad_after = n_action_steps - 1 if pad_after is None else int(pad_after)
        n = len(self.episode_ends)
        self.val_mask = get_val_mask(n, val_ratio, seed)
        self.train_mask = downsample_mask(~self.val_mask, max_train_episodes, seed)
        self._set_split(self.train_mask)

    def _set_split(self, mask):
        self.episode_mask = mask
        self.sampler = SequenceSampler(
            self.arrays,
            self.episode_ends,
            self.horizon,
            self.pad_before,
            self.pad_after,
            key_first_k={k: self.n_obs_steps for k in self.obs_keys},
            episode_mask=mask,
        )

    def get_validation_dataset(self) -> "SequenceDataset":
        """Same arrays (shared, not copied), windows of the held-out episodes."""
        val = copy.copy(self)
        val._set_split(self.val_mask)
        return val

    def get_normalizer(self):
        """LinearNormalizer fit on ALL episodes (as the reference): limits for low-dim keys, [0,1]->[-1,1] images."""
        from robodiff.data.normalizer import LinearNormalizer

        norm = LinearNormalizer()
        lowdim = {k: v for k, v in self.arrays.items() if k not in self.image_keys}
        norm.fit(lowdim, mode="limits")
        for k in self.image_keys:
            norm.set_image(k)
        return norm

    def _data_meta(self) -> dict:
        obs = {}
        for k in self.obs_keys:
            shape = self.arrays[k].shape[1:]
            if k in self.image_keys:
                obs[k] = {"shape": [shape[2], shape[0], shape[1]], "type": "rgb"}
            else:
                obs[k] = {"shape": list(shape), "type": "lowdim"}
        return {"obs": obs, "action": {"shape": list(self.arrays["action"].shape[1:])}}

    def shape_meta(self) -> dict:
        """Per-step shapes of this dataset's samples, contract 3 style, with the task's units/frames kept."""
        return copy.deepcopy(self._meta)

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitems__(self, indices) -> dict:
        """A whole batch in one gather per key: {"obs": {k: (B, T_obs, ...)}, "action": (B, horizon, Da)}."""
        b = self.sampler.sample_batch(np.asarray(indices, dtype=np.int64))
        obs = {}
        for k in self.obs_keys:
            x = torch.from_numpy(b[k])
            if k in self.image_keys:  # (B, T, H, W, C) uint8 -> (B, T, C, H, W) float in [0, 1]
                x = x.permute(0, 1, 4, 2, 3).float().div_(255.0)
            obs[k] = x
        return {"obs": obs, "action": torch.from_numpy(b["action"])}

    def __getitem__(self, i: int) -> dict:
        batch = self.__getitems__([int(i)])
        return {"obs": {k: v[0] for k, v in batch["obs"].items()}, "action": batch["action"][0]}


def collate_batched(batch):
    """DataLoader collate_fn for a dataset whose ``__getitems__`` already returns the stacked batch."""
    return batch


def make_loader(dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool = True, sampler=None,
                num_workers: int = 0, drop_last: bool = False, seed: int = 0) -> torch.utils.data.DataLoader:
    """DataLoader for any map-style dataset; one with ``__getitems__`` is fetched whole batches at a time.

    It always gets its own generator: a DataLoader otherwise draws its worker base seed from the global torch
    RNG each time it is iterated, which would shift the training noise of a resumed run.
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        collate_fn=collate_batched if hasattr(dataset, "__getitems__") else None,  # None: torch's default_collate
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )


def _merge_meta(got: dict, want: Optional[Mapping], path, task_name: str) -> dict:
    """The data's shapes, checked against the task's ``shape_meta``, with the task's extra fields (units,
    frame, meaning of the action, ...) added; without a task shape_meta the data's own."""
    if want is None:
        return got
    out = {"obs": {}, "action": dict(got["action"])}
    for key, spec in want["obs"].items():
        have = got["obs"][key]
        if list(have["shape"]) != list(spec.get("shape", have["shape"])):
            raise DatasetError(f"dataset {path}: obs {key!r} has per-step shape {have['shape']}, "
                               f"task {task_name!r} expects {list(spec['shape'])} (task.shape_meta)")
        if spec.get("type", have["type"]) != have["type"]:
            raise DatasetError(f"dataset {path}: obs {key!r} is {have['type']} data (per-step shape "
                               f"{have['shape']}), task {task_name!r} declares type {spec['type']!r}")
        out["obs"][key] = {**dict(spec), **have}
    spec = want.get("action", {})
    if list(got["action"]["shape"]) != list(spec.get("shape", got["action"]["shape"])):
        raise DatasetError(f"dataset {path}: action has shape {got['action']['shape']}, "
                           f"task {task_name!r} expects {list(spec['shape'])}")
    out["action"] = {**dict(spec), **got["action"]}
    return out
