"""Start and stop a twin station in its own process.

Each twin takes a fresh loopback address (ur_rtde hard-codes the controller ports, so addresses, not ports,
keep concurrent twins apart); ``stop()`` terminates it and waits, and an ``atexit`` hook does the same if the
caller forgets, so no server outlives its test.
"""

from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from real_robot.shm_ring import SharedRing
from real_robot.twin.addresses import (DASHBOARD_PORT, DEFAULT_CAMERAS, RTDE_PORT, TRUTH_RING_SPEC, camera_ring_name,
                                       truth_ring_name, unlink_stale)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _address_free(host: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, RTDE_PORT))
            return True
        except OSError:
            return False


def free_loopback_host() -> str:
    for _ in range(50):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
        if _address_free(host):
            return host
    raise RuntimeError("no free loopback address found for a twin (127.x.y.z all busy on port 30004?)")


class TwinProcess:
    """A running twin. Use as a context manager or call :meth:`stop`."""

    def __init__(self, host: str | None = None, frequency: float = 500.0, render: bool = True,
                 image_hw=(96, 96), camera_fps: float = 30.0, seed: int = 0, timeout: float = 30.0,
                 mujoco_gl: str | None = None, cameras=DEFAULT_CAMERAS):
        """``cameras``: the twin cameras to render (names from ``envs.ur5e_pusht.model.CAMERAS``), one ring each."""
        self.host = host or free_loopback_host()
        self.frequency = frequency
        self.image_hw = tuple(image_hw)
        self.cameras = tuple(cameras)
        cmd = [sys.executable, "-m", "real_robot.twin", "--host", self.host, "--frequency", str(frequency),
               "--image-size", *map(str, image_hw), "--camera-fps", str(camera_fps), "--seed", str(seed),
               "--cameras", ",".join(self.cameras), "--parent-pid", str(os.getpid())]
        if not render:
            cmd.append("--no-render")
        env = dict(os.environ)
        env["MUJOCO_GL"] = mujoco_gl or env.get("MUJOCO_GL", "egl")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=REPO_ROOT, start_new_session=True)
        self.log = deque(maxlen=200)
        self._truth = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line.rstrip())
                if line.startswith("TWIN READY"):
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(self.log)
                raise RuntimeError(f"twin on {self.host} failed to start:\n{tail}")

    def camera_ring(self, camera: str = DEFAULT_CAMERAS[0]) -> str:
        return camera_ring_name(self.host, camera)

    def dashboard(self, command: str, timeout: float = 5.0) -> str:
        """Send one dashboard command, return the reply line."""
        with socket.create_connection((self.host, DASHBOARD_PORT), timeout=timeout) as s:
            f = s.makefile("rw")
            f.readline()  # greeting
            f.write(command + "\n")
            f.flush()
            return f.readline().strip()

    def reset_scene(self, seed: int) -> None:
        """New T-block pose (twin-only dashboard command ``twin reset <seed>``)."""
        t_sent = time.time()
        reply = self.dashboard(f"twin reset {int(seed)}")
        if not reply.startswith("twin scene reset"):
            raise RuntimeError(f"twin on {self.host} refused scene reset: {reply}")
        deadline = time.monotonic() + 5.0
        while self.truth()["timestamp"] <= t_sent:  # observers must not see the previous scene
            if time.monotonic() > deadline:
                raise RuntimeError(f"twin on {self.host} publishes no ground truth after the scene reset")
            time.sleep(0.01)

    def truth(self) -> dict:
        """Newest ground truth of the simulated scene: block_pose_px, coverage, tcp_pose, block_lifted."""
        if self._truth is None:
            self._truth = SharedRing.attach(truth_ring_name(self.host), TRUTH_RING_SPEC, 64, timeout=5)
        return {k: v[-1] for k, v in self._truth.last(1).items()}

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Simulate a controller that vanishes (power cut / cable pulled): SIGKILL, no goodbye."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        for name in (*map(self.camera_ring, self.cameras), truth_ring_name(self.host)):
            unlink_stale(name)

    def stop(self, timeout: float = 5.0) -> None:
        if self._truth is not None:
            self._truth.close()
            self._truth = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        atexit.unregister(self.stop)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_twin(**kwargs) -> TwinProcess:
    return TwinProcess(**kwargs)
