"""Push-T's observations as robodiff dataset sources: what the Push-T task configs name as
``task.dataset.obs_sources: envs.pusht.dataset:OBS_SOURCES``.

A Push-T replay buffer (the reference's layout: ``img``, ``state``, ``keypoint``, ``action``, ``n_contacts``)
stores raw quantities; the policy's observation keys are derived from them (envs/pusht/protocol.py):

    keypoint   (20,)        the 9 block keypoints flattened + agent xy = state[:, :2]
    state      (5,)         as stored
    agent_pos  (2,)         state[:, :2]
    image      (96, 96, 3)  img (uint8; the reference stores float 0-255, converted when read)
"""

from __future__ import annotations

import numpy as np

from envs.pusht.protocol import OBS_KEYS, canonical_obs_type, keypoint_obs
from robodiff.data.datasets import DatasetError, ObsSource, SequenceDataset

OBS_SOURCES = {
    "keypoint": ObsSource(("keypoint", "state"), lambda a: keypoint_obs(a["keypoint"], np.asarray(a["state"])[:, :2]),
                          "9 block keypoints (T,9,2) + agent xy from state"),
    "state": ObsSource(("state",), lambda a: a["state"], "state (T,5)"),
    "agent_pos": ObsSource(("state",), lambda a: np.asarray(a["state"])[:, :2], "agent xy = state[:, :2]"),
    "image": ObsSource(("img",), lambda a: a["img"], "img (T,96,96,3) uint8 or float 0-255"),
}


class PushTDataset(SequenceDataset):
    """Push-T windows for obs_type "keypoints" (alias "lowdim": keypoint 20), "state" (5) or "image"
    (image + agent_pos)."""

    def __init__(self, source, obs_type: str = "keypoints", **kwargs):
        try:
            obs_type = canonical_obs_type(obs_type)
        except ValueError as exc:
            raise DatasetError(f"PushTDataset: {exc}") from None
        kwargs.setdefault("task_name", f"pusht_{obs_type}")
        super().__init__(source, OBS_KEYS[obs_type], obs_sources=OBS_SOURCES, **kwargs)
