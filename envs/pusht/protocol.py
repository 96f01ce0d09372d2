"""The Push-T protocol in one place: what is observed, how success is judged, which seeds are the test.

Everything that must agree between the simulator, the evaluation runner, the dataset transform, the twin's
Push-T bridge, the scripts and the task configs is defined here once (numpy only, so any of them can import
it cheaply):

- observation types and the contract-3 keys each one produces; one spelling, ``"keypoints"``, with the
  older ``"lowdim"`` / ``"keypoint"`` accepted as aliases (configs and checkpoints use them);
- the 20-dim keypoint observation: the 9 block keypoints (x, y) flattened, then the agent's x, y (px);
- the evaluation protocol of the reference: seeds 100000-100049, at most 300 steps, success = coverage of
  the goal above 0.95 (score = the episode's max reward, reward = min(coverage / 0.95, 1)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# the reference's human demonstrations, where a clone finds them (../shared beside the repository)
REFERENCE_ZARR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pusht" / "pusht_cchi_v7_replay.zarr"
TEST_START_SEED = 100000
N_TEST_SEEDS = 50
TEST_SEEDS = range(TEST_START_SEED, TEST_START_SEED + N_TEST_SEEDS)
MAX_STEPS = 300
SUCCESS_THRESHOLD = 0.95  # coverage of the goal T that counts as success

OBS_TYPES = ("state", "keypoints", "image")
OBS_TYPE_ALIASES = {"lowdim": "keypoints", "keypoint": "keypoints"}
# obs type -> the observation keys a policy of that type gets (contract 3)
OBS_KEYS = {"keypoints": ("keypoint",), "state": ("state",), "image": ("image", "agent_pos")}
N_KEYPOINTS = 9
KEYPOINT_OBS_DIM = 2 * N_KEYPOINTS + 2


def canonical_obs_type(obs_type: str) -> str:
    """``"keypoints"`` for any of its spellings; the other types unchanged; ValueError for unknown ones."""
    name = OBS_TYPE_ALIASES.get(obs_type, obs_type)
    if name not in OBS_TYPES:
        raise ValueError(f"unknown Push-T obs_type {obs_type!r}; valid obs_type values are {list(OBS_TYPES)} "
                         f"(aliases: {OBS_TYPE_ALIASES})")
    return name


def keypoint_obs(keypoints, agent_xy, dtype=np.float32) -> np.ndarray:
    """The keypoint observation (..., 20) from block keypoints (..., 9, 2) and agent xy (..., 2), in px."""
    kp = np.asarray(keypoints, dtype=dtype)
    xy = np.asarray(agent_xy, dtype=dtype)
    if kp.shape[-2:] != (N_KEYPOINTS, 2) or xy.shape[-1] != 2 or kp.shape[:-2] != xy.shape[:-1]:
        raise ValueError(f"keypoint_obs: keypoints {kp.shape} must be (..., {N_KEYPOINTS}, 2) and agent_xy "
                         f"{xy.shape} (..., 2) with the same leading shape")
    return np.concatenate([kp.reshape(*kp.shape[:-2], 2 * N_KEYPOINTS), xy], axis=-1)

