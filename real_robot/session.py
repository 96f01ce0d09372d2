"""Bring a Push-T station up and down in one place: the twin (``sim=True``) or real hardware, the arm
controller, the cameras; used by ``robodiff record``, ``deploy``, ``bench real-robot`` and the end-to-end test."""

from __future__ import annotations

import argparse
import contextlib

from real_robot.arm import ArmConfig, RTDEArm
from real_robot.cameras import RealSenseCamera, RingCamera
from real_robot.station import PushTStation, PushTTaskConfig
from robodiff import flags


def add_station_args(ap: argparse.ArgumentParser) -> None:
    """The arguments of :func:`open_station`, shared by ``robodiff record`` and ``robodiff deploy``."""
    ap.add_argument("--sim", action="store_true", help="start the simulated twin and use it")
    ap.add_argument("--host", default=None, help="robot IP (real) or loopback address for the twin")
    ap.add_argument("--frequency", type=float, default=500.0, help="controller rate: 500 e-series, 125 CB3")
    ap.add_argument("--realsense", nargs="*", default=(), metavar="SERIAL", help="RealSense serial numbers")
    ap.add_argument("--image-size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"))
    ap.add_argument("--camera-fps", type=float, default=30.0)
    flags.add_start_seed(ap, 0, "twin: first scene seed (episode i uses start seed + i)")

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
