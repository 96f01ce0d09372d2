"""Bring a Push-T station up and down in one place: the twin (``sim=True``) or real hardware, the arm
controller, the cameras; used by the demo / eval / bench scripts and the end-to-end test."""

from __future__ import annotations

import contextlib

from real_robot.arm import ArmConfig, RTDEArm
from real_robot.cameras import RealSenseCamera, RingCamera
from real_robot.env import PushTStation, PushTTaskConfig

@contextlib.contextmanager
def open_station(sim: bool = True, host: str | None = None, frequency: float = 500.0, image_hw=(96, 96),
                 camera_fps: float = 30.0, realsense_serials=(), task: PushTTaskConfig | None = None,
                 seed: int = 0, render: bool = True):
    """Yields (station, twin_or_None); on the twin the station also tracks the block (ground truth).
    Everything started here is stopped on exit, in reverse order, also on errors and Ctrl-C: cameras
    detached, arm servo stopped and control program ended, twin terminated."""
    with contextlib.ExitStack() as stack:
        twin = None
        if sim:
            from real_robot.twin.launch import TwinProcess

            twin = stack.enter_context(TwinProcess(host=host, frequency=frequency, image_hw=image_hw,
                                                   camera_fps=camera_fps, seed=seed, render=render))
            host = twin.host
        elif host is None:
            raise ValueError("real hardware needs the robot's address: --host 192.168.x.y")
        cameras = {}
        if sim and render:
            cameras["front"] = RingCamera(twin.camera_ring("front"), image_hw)
        for serial in realsense_serials:
            cameras[f"rs_{serial}"] = RealSenseCamera(serial, image_hw=image_hw, fps=int(camera_fps))
        for cam in cameras.values():
            stack.callback(cam.close)
            cam.wait_first_frame()
        mocap = None
        if sim:
            from real_robot.twin.pusht_bridge import BlockTracker

            mocap = BlockTracker(twin.host)
            stack.callback(mocap.close)
        arm = stack.enter_context(RTDEArm(ArmConfig(host=host, frequency=frequency)))
        yield PushTStation(arm, cameras, task, mocap=mocap), twin
