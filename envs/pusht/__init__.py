"""PushT simulation (pymunk), its evaluation runner and teleop recorder; registers ``robodiff/PushT-v0``."""

import os

# pygame prints a banner on import; every simulation worker process would repeat it.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402

from envs.pusht.env import PHYSICS_STATE_FIELDS, PushTEnv, initial_state_for_seed  # noqa: E402
from envs.pusht.geometry import GOAL_POSE, block_keypoints, coverage  # noqa: E402
from envs.pusht.protocol import OBS_TYPES  # noqa: E402

ENV_ID = "robodiff/PushT-v0"

if ENV_ID not in gym.registry:
    # Truncation is handled inside PushTEnv (max_episode_steps=300) so that stepping past the end is an error;
    # gymnasium's TimeLimit wrapper is not added on top.
    gym.register(id=ENV_ID, entry_point="envs.pusht.env:PushTEnv")


def __getattr__(name):
    # PushTRunner imports torch; loading it lazily keeps `import envs.pusht` (the env, the teleop recorder,
    # the benchmarks) free of torch's import time.
    if name == "PushTRunner":
        from envs.pusht.runner import PushTRunner

        return PushTRunner
    raise AttributeError(f"module 'envs.pusht' has no attribute {name!r}")


__all__ = ["ENV_ID", "GOAL_POSE", "OBS_TYPES", "PHYSICS_STATE_FIELDS", "PushTEnv", "PushTRunner", "block_keypoints",
           "coverage", "initial_state_for_seed"]
