"""Run a twin: bind its servers on a loopback address, start the physics and camera threads, stop on SIGTERM /
SIGINT or when the launching process dies.

Unmodified ``ur_rtde`` clients connect to it exactly as to a robot. Ports are the controller's fixed ones (ur_rtde
hard-codes them), so several twins run side by side on different loopback addresses (127.0.0.0/8 all reach
``lo`` on Linux): ``--host 127.0.0.7``. It binds loopback addresses only.

Run: ``python -m real_robot.twin --host 127.0.0.1 --frequency 500 [--cameras front,side]`` (``real_robot.twin.launch``
does it for you); each camera renders into its own shared-memory ring (``addresses.camera_ring_name``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socketserver
import threading

from real_robot.twin.addresses import (DASHBOARD_PORT, DEFAULT_CAMERAS, PRIMARY_PORT, RTDE_PORT, SECONDARY_PORT,
                                       camera_list)
from real_robot.twin.dashboard import _DashboardHandler
from real_robot.twin.rtde_server import _RTDEHandler
from real_robot.twin.script_server import _ScriptHandler
from real_robot.twin.station import Station

log = logging.getLogger("real_robot.twin")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _exit_with_parent(parent_pid: int, stop_event: threading.Event) -> None:
    """Stop the twin when the process that launched it is gone (killed before it could stop us): a twin
    left running would hold its loopback address and shared memory, and keep two cores busy."""
    while not stop_event.wait(0.5):
        if os.getppid() != parent_pid:
            log.warning("launching process %d is gone: stopping the twin in 2 s", parent_pid)
            stop_event.wait(2.0)  # first let its arm controller stop the (simulated) arm and disconnect
            stop_event.set()


def serve(host: str, frequency: float, render: bool = True, image_hw=(96, 96), camera_fps: float = 30.0,
          seed: int = 0, parent_pid: int | None = None, cameras=DEFAULT_CAMERAS) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the twin binds loopback addresses only (127.x.y.z), got {host!r}")
    station = Station(host, frequency, image_hw=image_hw, camera_fps=camera_fps, cameras=cameras, render=render,
                      seed=seed)
    servers = []
    try:
        for port, handler in ((RTDE_PORT, _RTDEHandler), (DASHBOARD_PORT, _DashboardHandler),
                              (PRIMARY_PORT, _ScriptHandler), (SECONDARY_PORT, _ScriptHandler)):
            cls = type(handler.__name__, (handler,), {"station": station})
            try:
                srv = _Server((host, port), cls)
            except OSError as e:
                raise OSError(f"twin: cannot bind {host}:{port} ({e.strerror}); another twin or controller "
                              "serves this address: stop it or pass another --host 127.0.0.N") from None
            servers.append(srv)
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        threads = [threading.Thread(target=station.run_physics, daemon=True),
                   threading.Thread(target=station.run_cameras, daemon=True)]
        if parent_pid is not None:
            threads.append(threading.Thread(target=_exit_with_parent, args=(parent_pid, station.stop_event),
                                            daemon=True))
        for t in threads:
            t.start()
        signal.signal(signal.SIGTERM, lambda *_: station.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: station.stop_event.set())
        print(f"TWIN READY {host} {frequency:.0f}Hz", flush=True)
        station.stop_event.wait()
        for t in threads:
            t.join(timeout=2)
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
        station.close()
        log.info("twin on %s stopped (%d overrun periods)", host, station.overruns)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Simulated UR5e Push-T station speaking RTDE / dashboard / URScript.")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (127.x.y.z)")
    p.add_argument("--frequency", type=float, default=500.0, help="controller rate: 500 (e-series) or 125 (CB3)")
    p.add_argument("--no-render", action="store_true", help="no cameras (physics and servers only)")
    p.add_argument("--image-size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"))
    p.add_argument("--camera-fps", type=float, default=30.0)
    p.add_argument("--cameras", type=camera_list, default=DEFAULT_CAMERAS, metavar="CAM[,CAM...]",
                   help=f"cameras to render, each into its own ring (default {','.join(DEFAULT_CAMERAS)})")
    p.add_argument("--seed", type=int, default=0, help="initial T-block pose seed")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="stop when this process (the launcher) exits; set by TwinProcess")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[twin %(levelname)s] %(message)s")
    os.environ.setdefault("MUJOCO_GL", "egl")
    serve(a.host, a.frequency, render=not a.no_render, image_hw=tuple(a.image_size), camera_fps=a.camera_fps,
          seed=a.seed, parent_pid=a.parent_pid, cameras=a.cameras)
