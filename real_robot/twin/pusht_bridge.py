"""The twin speaks Push-T: its table square is Push-T's 512 x 512 px world (1 px = WORKSPACE_SIZE / 512 m), its
T is Push-T's T, so a Push-T policy (pixel units, contract-3 keys) can push the twin's block and twin
recordings can be stored in the Push-T dataset layout and trained on with the unchanged training pipeline.

The block pose comes from the twin's ground truth (``BlockTracker``), the stand-in for a motion-capture system;
on a real station without one, only image + agent_pos policies apply.
"""

from __future__ import annotations

import numpy as np

from envs.pusht.geometry import block_keypoints
from envs.pusht.protocol import keypoint_obs
from envs.ur5e_pusht.model import px_to_table, table_to_px
from real_robot.shm_ring import SharedRing
from real_robot.twin.addresses import TRUTH_RING_SPEC, truth_ring_name

class BlockTracker:
    """Timestamped T-block poses (Push-T px) from a twin: ``get(k) -> {"timestamp", "block_pose_px"}``."""

    def __init__(self, host: str):
        self._ring = SharedRing.attach(truth_ring_name(host), TRUTH_RING_SPEC, 64, timeout=5)

    def get(self, k: int = 1) -> dict:
        out = self._ring.last(k)
        return {"timestamp": out["timestamp"], "block_pose_px": out["block_pose_px"]}

    def close(self) -> None:
        self._ring.close()


def pusht_obs(obs: dict) -> dict:
    """Station observation (metres, + block_pose_px from a tracker) -> Push-T's keys in pixels."""
    agent = table_to_px(obs["agent_pos"]).astype(np.float32)  # (n, 2)
    out = {"agent_pos": agent}
    if "block_pose_px" in obs:
        out["keypoint"] = keypoint_obs(block_keypoints(np.asarray(obs["block_pose_px"], dtype=np.float64)), agent)
        out["state"] = np.concatenate([agent, obs["block_pose_px"]], axis=1).astype(np.float32)
    out.update({k: v for k, v in obs.items() if k == "image" or k.startswith("image_")})  # every camera
    return out


class PushTPixelPolicy:
    """Wrap a callable Push-T policy (px obs -> px actions) so it runs on the twin station (metres)."""

    def __init__(self, policy):
        self.policy = policy

    def __call__(self, obs: dict) -> dict:
        out = self.policy(pusht_obs(obs))
        act = np.asarray(out["action"], dtype=np.float64)
        return {"action": px_to_table(act)}


def to_pusht_episode(ep: dict) -> dict:
    """A twin recording -> the Push-T dataset layout (img, state, keypoint, action in px, n_contacts)."""
    if "block_pose_px" not in ep:
        raise KeyError("episode has no block_pose_px: record it on the twin with the BlockTracker attached")
    agent = table_to_px(ep["agent_pos"])
    block = np.asarray(ep["block_pose_px"], dtype=np.float64)
    out = {
        "state": np.concatenate([agent, block], axis=1).astype(np.float32),
        "keypoint": block_keypoints(block).astype(np.float32),
        "action": table_to_px(ep["action"]).astype(np.float32),
        "n_contacts": np.zeros((len(agent), 1), np.float32),
    }
    out.update({k: v for k, v in ep.items() if k == "img" or k.startswith("img_")})  # every camera
    return out
