"""Torch datasets of training windows over a PushT-style replay buffer (contract 3 batch format).

One class serves every observation type: the task's ``obs_keys`` pick which observation arrays are derived
from the buffer's standard keys (``OBS_SOURCES``), so "lowdim", "state" and "image" PushT are configurations,
not copies. All arrays are derived once, held in memory and windowed by ``SequenceSampler``; a batch is a
single gather per key (``__getitems__``, which ``torch.utils.data.DataLoader`` calls with a whole batch of
indices), so data loading stays far below the cost of a training step.

Sample format: ``{"obs": {key: (T_obs, *shape)}, "action": (horizon, Da)}`` float32 tensors, T_obs =
``n_obs_steps`` (the policy conditions on the first ``n_obs_steps`` steps of the window; loading only those
is the sampler's ``key_first_k``). Images come out as float CHW in [0, 1].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

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


def _keypoint_obs(a):
    # reference "lowdim" PushT obs: 9 block keypoints flattened (18) then agent xy (2)
    kp = np.asarray(a["keypoint"], dtype=np.float32)
    return np.concatenate([kp.reshape(len(kp), -1), np.asarray(a["state"], np.float32)[:, :2]], axis=1)


OBS_SOURCES: Dict[str, ObsSource] = {
    "keypoint": ObsSource(("keypoint", "state"), _keypoint_obs, "9 block keypoints (T,9,2) + agent xy from state"),
    "state": ObsSource(("state",), lambda a: np.asarray(a["state"], np.float32), "state (T,5)"),
    "agent_pos": ObsSource(("state",), lambda a: np.asarray(a["state"], np.float32)[:, :2], "agent xy = state[:, :2]"),
    # images stay uint8 HWC in memory (0.7 GB for the reference data instead of 2.8 GB as float32);
    # conversion to float CHW happens per batch in _to_torch_obs
    "image": ObsSource(("img",), lambda a: a["img"], "img (T,96,96,3) uint8 or float 0-255"),
}

IMAGE_KEYS = frozenset({"image"})


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

    ``source``: path or ReplayBuffer with the standard PushT keys. ``obs_keys``: observation keys of the task
    (keys of ``OBS_SOURCES``). The train split is the complement of ``get_val_mask(n, val_ratio, seed)``,
    downsampled to ``max_train_episodes``; ``get_validation_dataset()`` gives the held-out episodes.
    """

    def __init__(
        self,
        source,
        obs_keys: Sequence[str],
        horizon: int = 16,
        n_obs_steps: int = 2,
        pad_before: Optional[int] = None,
        pad_after: Optional[int] = None,
        n_action_steps: int = 8,
        val_ratio: float = 0.0,
        max_train_episodes: Optional[int] = None,
        seed: int = 42,
        task_name: str = "task",
    ):
        rb = open_buffer(source)
        self.source_name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
        keys = set(rb.keys())
        unknown = [k for k in obs_keys if k not in OBS_SOURCES]
        if unknown:
            raise DatasetError(f"{task_name}: unknown obs keys {unknown}; known: {sorted(OBS_SOURCES)}")
        need = {"action": ("action",)}
        need.update({k: OBS_SOURCES[k].needs for k in obs_keys})
        for what, needs in need.items():
            missing = [k for k in needs if k not in keys]
            if missing:
                descr = "action (T,2)" if what == "action" else OBS_SOURCES[what].what
                raise DatasetError(
                    f"dataset {self.source_name} has no key {missing[0]!r} (it has {sorted(keys)}); "
                    f"task {task_name!r} needs {missing} for {what!r}: {descr}"
                )
        n_steps = int(rb.n_steps)
        raw = {k: _read_array(rb[k], n_steps) for k in sorted({n for ns in need.values() for n in ns})}
        self.arrays = {k: OBS_SOURCES[k].derive(raw) for k in obs_keys}
        self.arrays["action"] = np.asarray(raw["action"], dtype=np.float32)
        del raw
        self.episode_ends = np.asarray(rb.episode_ends, dtype=np.int64)
        if len(self.episode_ends) == 0:
            raise DatasetError(f"dataset {self.source_name} has no episodes")
        self.obs_keys = list(obs_keys)
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
        lowdim = {k: v for k, v in self.arrays.items() if k not in IMAGE_KEYS}
        norm.fit(lowdim, mode="limits")
        for k in self.obs_keys:
            if k in IMAGE_KEYS:
                norm.set_image(k)
        return norm

    def shape_meta(self) -> dict:
        """Per-step shapes of this dataset's samples, contract 3 style."""
        obs = {}
        for k in self.obs_keys:
            shape = self.arrays[k].shape[1:]
            if k in IMAGE_KEYS:
                obs[k] = {"shape": [shape[2], shape[0], shape[1]], "type": "rgb"}
            else:
                obs[k] = {"shape": list(shape), "type": "lowdim"}
        return {"obs": obs, "action": {"shape": list(self.arrays["action"].shape[1:])}}

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitems__(self, indices) -> dict:
        """A whole batch in one gather per key: {"obs": {k: (B, T_obs, ...)}, "action": (B, horizon, Da)}."""
        b = self.sampler.sample_batch(np.asarray(indices, dtype=np.int64))
        obs = {}
        for k in self.obs_keys:
            x = torch.from_numpy(b[k])
            if k in IMAGE_KEYS:  # (B, T, H, W, C) uint8 -> (B, T, C, H, W) float in [0, 1]
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


# Named task presets: the obs keys each PushT variant uses (contract 3).
PUSHT_OBS_KEYS = {
    "lowdim": ("keypoint",),
    "keypoints": ("keypoint",),
    "state": ("state",),
    "image": ("image", "agent_pos"),
}


class PushTDataset(SequenceDataset):
    """PushT windows for obs_type "lowdim"/"keypoints" (keypoint 20), "state" (5) or "image" (image + agent_pos)."""

    def __init__(self, source, obs_type: str = "lowdim", **kwargs):
        if obs_type not in PUSHT_OBS_KEYS:
            raise DatasetError(f"PushTDataset: obs_type {obs_type!r} unknown; choose one of {sorted(PUSHT_OBS_KEYS)}")
        kwargs.setdefault("task_name", f"pusht_{obs_type}")
        super().__init__(source, PUSHT_OBS_KEYS[obs_type], **kwargs)
