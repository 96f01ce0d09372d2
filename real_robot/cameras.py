"""Cameras: frames with capture timestamps, read from a shared-memory ring their producer process fills.

One reader for every source: the twin's MuJoCo cameras write their ring inside the twin process; a RealSense
camera gets a producer process here that pulls frames with ``pyrealsense2`` and writes them the same way.
The timestamp is the wall-clock (``time.time()``) capture time, so observations from several cameras and the
arm can be aligned by time.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid

import numpy as np

from real_robot.shm_ring import SharedRing

class CameraStalled(RuntimeError):
    """No new frame for longer than the allowed stall time."""

def color_spec(image_hw) -> dict:
    return {"color": ((*image_hw, 3), np.uint8), "step": ((), np.int64)}

class RingCamera:
    """Camera interface: ``get(k)`` -> {"color": (k, H, W, 3) uint8, "timestamp": (k,)}, oldest first."""

    def __init__(self, ring_name: str, image_hw, capacity: int = 64, attach_timeout: float = 10.0,
                 stall_timeout: float = 0.5, child_of_owner: bool = False):
        self.image_hw = tuple(image_hw)
        self.stall_timeout = stall_timeout
        self._ring = SharedRing.attach(ring_name, color_spec(image_hw), capacity, timeout=attach_timeout,
                                       child_of_owner=child_of_owner)

    def wait_first_frame(self, timeout: float = 10.0) -> None:
        if not self.wait_new_frame(0, timeout):
            raise CameraStalled(f"camera ring {self._ring.name!r} produced no frame in {timeout:.0f} s")

    @property
    def frame_count(self) -> int:
        """Frames written so far (a new frame has arrived when this grows)."""
        return self._ring.count

    def wait_new_frame(self, after: int, timeout: float) -> bool:
        """Block until more than ``after`` frames have been written (True) or ``timeout`` s pass (False).

        Polls the shared-memory counter every 0.5 ms: the producer is another process with no event to wait
        on, and at 30 fps half a millisecond is 1.5% of a frame period."""
        deadline = time.monotonic() + timeout
        while self._ring.count <= after:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True

    def get(self, k: int = 1) -> dict[str, np.ndarray]:
        """Raises CameraStalled when the newest frame is too old, or when none has arrived yet (a camera
        still starting up is treated like a stalled one: the policy pauses and the arm holds)."""
        if self._ring.count == 0:
            raise CameraStalled(f"camera ring {self._ring.name!r} has not produced a frame yet")
        frames = self._ring.last(k)
        age = time.time() - frames["timestamp"][-1]
        if age > self.stall_timeout:
            raise CameraStalled(f"camera ring {self._ring.name!r}: newest frame is {age:.2f} s old "
                                f"(> {self.stall_timeout} s): camera stalled or unplugged")
        return frames

    def close(self) -> None:
        self._ring.close()

class RealSenseCamera(RingCamera):
    """An Intel RealSense (D415/D435) streaming colour at ``fps`` into a ring, via ``pyrealsense2``.

    Needs ``pip install pyrealsense2`` and, on Debian/Ubuntu, ``apt-get install libusb-1.0-0``. The device's
    frame timestamp is in the camera clock; we stamp frames with the host time at arrival minus the frame's
    reported age (the SDK's ``get_timestamp`` in global-time mode), like the reference's pipeline.
    """

    def __init__(self, serial: str, image_hw=(240, 320), fps: int = 30, capacity: int = 64, **kw):
        try:
            import pyrealsense2  # noqa: F401
        except ImportError as e:
            raise ImportError("RealSenseCamera needs pyrealsense2: `pip install pyrealsense2` (and "
                              "`apt-get install libusb-1.0-0`)") from e
        name = f"robodiff_rs_{serial}_{uuid.uuid4().hex[:6]}"
        self._producer_ring = SharedRing.create(name, color_spec(image_hw), capacity)
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_realsense_main, daemon=True,
                                 args=(serial, tuple(image_hw), fps, name, capacity, self._stop))
        self._proc.start()
        super().__init__(name, image_hw, capacity, child_of_owner=True, **kw)

    def close(self) -> None:
        self._stop.set()
        self._proc.join(5)
        super().close()
        self._producer_ring.close()

def _realsense_main(serial, image_hw, fps, ring_name, capacity, stop) -> None:
    import cv2
    import pyrealsense2 as rs

    ring = SharedRing.attach(ring_name, color_spec(image_hw), capacity, child_of_owner=True)
    pipe, cfg = rs.pipeline(), rs.config()
    cfg.enable_device(serial)
    cfg.enable_stream(rs.stream.color, 640, 480, rs.format.rgb8, fps)
    profile = pipe.start(cfg)
    sensor = profile.get_device().first_color_sensor()
    if sensor.supports(rs.option.global_time_enabled):
        sensor.set_option(rs.option.global_time_enabled, 1)  # frame timestamps on the host clock
    step = 0
    try:
        while not stop.is_set():
            frames = pipe.wait_for_frames(1000)
            color = frames.get_color_frame()
            stamp = color.get_timestamp() / 1000.0  # ms, host-synchronised (global time)
            img = np.asanyarray(color.get_data())
            if img.shape[:2] != tuple(image_hw):
                img = cv2.resize(img, (image_hw[1], image_hw[0]), interpolation=cv2.INTER_AREA)
            ring.put(stamp, color=img, step=step)
            step += 1
    finally:
        pipe.stop()
        ring.close()
