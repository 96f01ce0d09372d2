"""Simulated UR5e Push-T station (MuJoCo): the physics behind the real-robot twin in ``real_robot/twin``."""

from envs.ur5e_pusht.model import PX, WORKSPACE_CENTER, WORKSPACE_SIZE, build_mjcf, px_to_table, table_to_px
from envs.ur5e_pusht.sim import IKError, UR5ePushTSim

__all__ = ["UR5ePushTSim", "IKError", "build_mjcf", "px_to_table", "table_to_px", "PX", "WORKSPACE_CENTER",
           "WORKSPACE_SIZE"]
