"""Bring a Push-T station up and down in one place: the twin (``sim=True``) or real hardware, the arm
controller, the cameras; used by ``robodiff record``, ``deploy``, ``bench real-robot`` and the end-to-end test."""

from __future__ import annotations

import argparse
import contextlib

from real_robot.arm import ArmConfig, RTDEArm
from real_robot.cameras import RealSenseCamera, RingCamera
from real_robot.station import PushTStation, PushTTaskConfig
from real_robot.twin.addresses import DEFAULT_CAMERAS, camera_list
from robodiff import flags


def add_station_args(ap: argparse.ArgumentParser) -> None:
    """The arguments of :func:`open_station`, shared by ``robodiff record`` and ``robodiff deploy``."""
    ap.add_argument("--sim", action="store_true", help="start the simulated twin and use it")
    ap.add_argument("--host", default=None, help="robot IP (real) or loopback address for the twin")
    ap.add_argument("--frequency", type=float, default=500.0, help="controller rate: 500 e-series, 125 CB3")
    ap.add_argument("--realsense", nargs="*", default=(), metavar="SERIAL", help="RealSense serial numbers")
    ap.add_argument("--image-size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"))
    ap.add_argument("--camera-fps", type=float, default=30.0)
    ap.add_argument("--cameras", type=camera_list, default=None, metavar="CAM[,CAM...]",
                    help="twin cameras, in order: the first is the policy's `image` (recorded as `img`), each other "
                         "`image_<cam>` (`img_<cam>`), e.g. front,side (default: front; deploy: the cameras the "
                         "checkpoint needs)")
    flags.add_start_seed(ap, 0, "twin: first scene seed (episode i uses start seed + i)")


def realsense_name(serial: str) -> str:
    """The station's name of a RealSense camera (its images are ``image_rs_<serial>`` unless it comes first)."""
    return f"rs_{serial}"


def camera_names(twin_cameras=(), realsense_serials=()) -> list[str]:
    """The station's cameras, in the order :func:`open_station` opens them (which decides the image keys)."""
    return [*twin_cameras, *map(realsense_name, realsense_serials)]


@contextlib.contextmanager
def open_station(sim: bool = True, host: str | None = None, frequency: float = 500.0, image_hw=(96, 96),
                 camera_fps: float = 30.0, realsense_serials=(), task: PushTTaskConfig | None = None,
                 seed: int = 0, render: bool = True, twin_cameras=DEFAULT_CAMERAS):
    """Yields (station, twin_or_None); on the twin the station also tracks the block (ground truth). The
    station's cameras are ``twin_cameras`` (on the twin), then the RealSense ones (``rs_<serial>``).
    Everything started here is stopped on exit, in reverse order, also on errors and Ctrl-C: cameras
    detached, arm servo stopped and control program ended, twin terminated."""
    with contextlib.ExitStack() as stack:
        twin = None
        if sim:
            from real_robot.twin.launch import TwinProcess

            twin = stack.enter_context(TwinProcess(host=host, frequency=frequency, image_hw=image_hw,
                                                   camera_fps=camera_fps, seed=seed, render=render,
                                                   cameras=twin_cameras))
            host = twin.host
        elif host is None:
            raise ValueError("real hardware needs the robot's address: --host 192.168.x.y")
        cameras = {}
        if sim and render:
            cameras.update({cam: RingCamera(twin.camera_ring(cam), image_hw) for cam in twin_cameras})
        for serial in realsense_serials:
            cameras[realsense_name(serial)] = RealSenseCamera(serial, image_hw=image_hw, fps=int(camera_fps))
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
