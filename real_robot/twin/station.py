"""The simulated UR5e Push-T station as a network device: a UR controller's RTDE (30004), dashboard (29999) and
script (30002 primary / 30003 secondary) servers in front of the MuJoCo physics of ``envs.ur5e_pusht``, plus
its cameras publishing into shared-memory rings.

Unmodified ``ur_rtde`` clients connect to it exactly as to a robot. Ports are the controller's fixed ones (ur_rtde
hard-codes them), so several twins run side by side on different loopback addresses (127.0.0.0/8 all reach
``lo`` on Linux): ``--host 127.0.0.7``. It binds loopback addresses only.

Run: ``python -m real_robot.twin --host 127.0.0.1 --frequency 500`` (``real_robot.twin.launch`` does it for you).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import signal
import socket
import socketserver
import struct
import threading
import time

import numpy as np

from real_robot.shm_ring import SharedRing
from real_robot.twin import rtde_wire as W
from real_robot.twin.control_program import ControlProgram

log = logging.getLogger("real_robot.twin")

RTDE_PORT, DASHBOARD_PORT, PRIMARY_PORT, SECONDARY_PORT = 30004, 29999, 30002, 30003
E_SERIES_VERSION = (5, 11, 6, 108249)
CB3_VERSION = (3, 15, 7, 106331)
RUNNING, STOPPED, PLAYING = 7, 1, 2  # robot_mode RUNNING; runtime_state STOPPED / PLAYING


def camera_ring_name(host: str, camera: str) -> str:
    """Shared-memory name of a twin camera's ring (one twin per loopback address)."""
    return f"robodiff_twin_{host.replace('.', '_')}_{camera}"


def camera_ring_spec(image_hw: tuple[int, int]) -> dict:
    return {"color": ((*image_hw, 3), np.uint8), "step": ((), np.int64)}


def truth_ring_name(host: str) -> str:
    """Ground truth of the simulated scene (block pose, coverage): the twin's stand-in for a motion-capture
    system, used to score episodes; a policy never sees it."""
    return f"robodiff_twin_{host.replace('.', '_')}_truth"


TRUTH_RING_SPEC = {"block_pose_px": ((3,), np.float64), "coverage": ((), np.float64),
                   "tcp_pose": ((6,), np.float64), "block_lifted": ((), np.bool_)}


class Station:
    """Physics + controller state shared by the stepping loop and the server threads (one lock)."""

    def __init__(self, host: str, frequency: float, image_hw=(96, 96), camera_fps: float = 30.0,
                 cameras=("front",), render: bool = True, seed: int = 0):
        from envs.ur5e_pusht import UR5ePushTSim  # physics lives in envs/

        self.host, self.frequency, self.dt = host, float(frequency), 1.0 / frequency
        self.version = E_SERIES_VERSION if frequency >= 500 else CB3_VERSION
        self.sim = UR5ePushTSim(timestep=self.dt, render_size=image_hw)
        self.sim.reset(seed=seed)
        self.lock = threading.Lock()
        self.new_state = threading.Condition(self.lock)
        self.inputs: dict[str, object] = {}
        self.program: ControlProgram | None = None
        self.last_program_text = ""
        self.tick = 0
        self.state: dict[str, object] = {}
        self.overruns = 0
        self.exec_time = 0.0
        self.stop_event = threading.Event()
        self.render = render
        self.camera_fps = camera_fps
        self.rings = {}
        if render:
            for cam in cameras:
                name = camera_ring_name(host, cam)
                unlink_stale(name)
                self.rings[cam] = SharedRing.create(name, camera_ring_spec(image_hw), capacity=64)
        unlink_stale(truth_ring_name(host))
        self.truth = SharedRing.create(truth_ring_name(host), TRUTH_RING_SPEC, capacity=64)
        self._publish_state()

    # -- program lifecycle (script server / dashboard) -----------------------------------------------------------
    def start_program(self, text: str) -> None:
        m = re.search(r"# int register offset\n(\d+)", text)
        with self.lock:
            self.last_program_text = text
            self.program = ControlProgram(self.sim, self.dt, register_offset=int(m.group(1)) if m else 0)
        log.info("control program started (register offset %d)", self.program.off)

    def stop_program(self) -> None:
        with self.lock:
            if self.program is not None:
                self.program.running = False

    @property
    def program_running(self) -> bool:
        return self.program is not None and self.program.running

    # -- stepping ----------------------------------------------------------------------------------------------
    def _publish_state(self) -> None:
        sim = self.sim
        q = sim.q
        q_target = sim.q_target
        running = self.program_running
        st = {
            "timestamp": self.tick * self.dt,
            "actual_q": q, "actual_qd": sim.qd, "target_q": q_target,
            "target_qd": sim.qd,
            "actual_TCP_pose": sim.tcp_pose(), "actual_TCP_speed": sim.tcp_speed(),
            "target_TCP_pose": sim.tcp_pose(q_target),
            "robot_mode": RUNNING, "safety_mode": 1, "safety_status": 1, "joint_mode": [253] * 6,
            "runtime_state": PLAYING if running else STOPPED,
            "robot_status_bits": 0b11 if running else 0b01,  # bit0 power on, bit1 program running
            "safety_status_bits": 0b1,  # normal mode
            "speed_scaling": 1.0, "target_speed_fraction": 1.0,
            "actual_execution_time": self.exec_time * 1e3,
            "actual_main_voltage": 48.0, "actual_robot_voltage": 48.0, "joint_temperatures": [30.0] * 6,
        }
        if self.program is not None:
            st.update(self.program.registers_out())
        for k, v in self.inputs.items():
            if k.startswith("input_") and "register" in k:
                st[k] = v
        self.state = st

    def step_once(self) -> None:
        t0 = time.perf_counter()
        with self.lock:
            if self.program_running:
                self.program.tick(self.inputs)
            self.sim.step()
            self.tick += 1
            self._publish_state()
            self.new_state.notify_all()
        self.exec_time = time.perf_counter() - t0

    def run_physics(self) -> None:
        """Step at the controller rate against the wall clock; a late period is counted, never skipped, so the
        simulated time stays tied to the number of periods the clients saw."""
        next_t = time.perf_counter()
        while not self.stop_event.is_set():
            self.step_once()
            next_t += self.dt
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:  # far behind (host overloaded): resynchronise instead of bursting
                self.overruns += 1
                next_t = time.perf_counter()

    def run_cameras(self) -> None:
        """Render every camera (and publish the ground truth) at the camera rate, stamped at capture."""
        period = 1.0 / self.camera_fps
        next_t = time.perf_counter()
        while not self.stop_event.is_set():
            with self.lock:
                stamp = time.time()
                truth = dict(block_pose_px=self.sim.block_pose_px(), coverage=self.sim.coverage(),
                             tcp_pose=self.sim.tcp_pose(), block_lifted=self.sim.block_lifted())
            self.truth.put(stamp, **truth)
            for cam, ring in self.rings.items():
                with self.lock:  # only the scene snapshot needs the state; rasterising runs beside physics
                    stamp, step = time.time(), self.tick
                    self.sim.capture_scene(cam)
                ring.put(stamp, color=self.sim.render_scene(), step=step)
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.perf_counter()

    def close(self) -> None:
        self.stop_event.set()
        with self.lock:
            self.new_state.notify_all()
        for ring in (*self.rings.values(), self.truth):
            ring.close()
        self.sim.close()


def unlink_stale(name: str) -> None:
    """A twin killed with SIGKILL leaves its ring behind; a new twin on the same address replaces it."""
    from multiprocessing import shared_memory

    try:
        old = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    old.close()
    old.unlink()


# ---------------------------------------------------------------------------------------------------------------
# RTDE server
# ---------------------------------------------------------------------------------------------------------------
class _RTDEHandler(socketserver.BaseRequestHandler):
    station: Station

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_lock = threading.Lock()
        self.outputs = None  # (names, types, struct, every_n_ticks)
        self.input_recipes: dict[int, tuple[list[str], list[str], struct.Struct]] = {}
        self.streaming = threading.Event()
        self.closed = threading.Event()

    def _send(self, ptype: int, payload: bytes = b"") -> None:
        with self.send_lock:
            self.request.sendall(W.pack(ptype, payload))

    def handle(self):
        streamer = threading.Thread(target=self._stream, daemon=True)
        streamer.start()
        try:
            while not self.station.stop_event.is_set():
                ptype, payload = W.recv_packet(self.request)
                self._dispatch(ptype, payload)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self.streaming.clear()
            with self.station.lock:
                self.station.new_state.notify_all()

    def _dispatch(self, ptype: int, payload: bytes) -> None:
        st = self.station
        if ptype == W.REQUEST_PROTOCOL_VERSION:
            version = struct.unpack(">H", payload[:2])[0]
            self._send(ptype, struct.pack(">B", 1 if version in (1, 2) else 0))
        elif ptype == W.GET_URCONTROL_VERSION:
            self._send(ptype, struct.pack(">IIII", *st.version))
        elif ptype == W.SETUP_OUTPUTS:
            freq = struct.unpack(">d", payload[:8])[0]
            names = W.split_names(payload[8:])
            types = [W.output_type(n) for n in names]
            if "NOT_FOUND" not in types and 0 < freq <= st.frequency:
                every = max(1, int(round(st.frequency / freq)))
                self.outputs = (names, types, W.recipe_struct(types), every)
                rid = 1
            else:
                rid = 0  # the controller rejects the recipe; ur_rtde names the missing variables
                if not 0 < freq <= st.frequency:
                    log.warning("RTDE output frequency %.1f Hz rejected (controller runs at %.0f Hz)", freq,
                                st.frequency)
            self._send(ptype, struct.pack(">B", rid) + ",".join(types).encode())
        elif ptype == W.SETUP_INPUTS:
            names = W.split_names(payload)
            types = [W.input_type(n) for n in names]
            rid = 0
            if "NOT_FOUND" not in types:
                rid = len(self.input_recipes) + 1
                self.input_recipes[rid] = (names, types, W.recipe_struct(types))
            self._send(ptype, struct.pack(">B", rid) + ",".join(types).encode())
        elif ptype == W.START:
            ok = self.outputs is not None
            self._send(ptype, struct.pack(">B", int(ok)))
            if ok:
                self.streaming.set()
        elif ptype == W.PAUSE:
            self.streaming.clear()
            self._send(ptype, struct.pack(">B", 1))
        elif ptype == W.DATA_PACKAGE:
            rid = payload[0]
            if rid not in self.input_recipes:
                log.warning("RTDE data package for unknown input recipe %d ignored", rid)
                return
            names, types, fmt = self.input_recipes[rid]
            values = W.unflatten(fmt.unpack(payload[1:1 + fmt.size]), types)
            with st.lock:
                st.inputs.update(zip(names, values))
        elif ptype == W.TEXT_MESSAGE:
            pass
        else:
            log.warning("RTDE package type %r not supported; ignored", chr(ptype))

    def _stream(self):
        """Send one data package every ``every`` controller periods while started."""
        st = self.station
        last = -1
        while not self.closed.is_set() and not st.stop_event.is_set():
            if not self.streaming.wait(timeout=0.05):
                continue
            names, types, fmt, every = self.outputs
            with st.lock:
                while st.tick == last or st.tick % every:
                    if self.closed.is_set() or st.stop_event.is_set():
                        return
                    st.new_state.wait(timeout=0.1)
                last = st.tick
                state = st.state
            values = [state.get(n, None) for n in names]
            values = [W.zero_of(t) if v is None else v for v, t in zip(values, types)]
            try:
                data = fmt.pack(*W.flatten([_plain(v) for v in values], types))
                if self.streaming.is_set():
                    self._send(W.DATA_PACKAGE, struct.pack(">B", 1) + data)
            except OSError:
                return


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# ---------------------------------------------------------------------------------------------------------------
# Dashboard server (text lines)
# ---------------------------------------------------------------------------------------------------------------
class _DashboardHandler(socketserver.StreamRequestHandler):
    station: Station

    def handle(self):
        self.wfile.write(b"Connected: Universal Robots Dashboard Server\n")
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            reply = self.answer(line)
            self.wfile.write((reply + "\n").encode())
            if line == "quit":
                return

    def answer(self, line: str) -> str:
        st = self.station
        cmd = line.lower()
        v = st.version
        if cmd == "polyscopeversion":
            return f"URSoftware {v[0]}.{v[1]}.{v[2]}.{v[3]} (Nov 27 2026)"
        if cmd == "get serial number":
            return "20265300001"
        if cmd == "get robot model":
            return "UR5"
        if cmd == "robotmode":
            return "Robotmode: RUNNING"
        if cmd in ("safetystatus", "safetymode"):
            return ("Safetystatus: " if cmd == "safetystatus" else "Safetymode: ") + "NORMAL"
        if cmd == "programstate":
            return "PLAYING rtde_control" if st.program_running else "STOPPED <unnamed>"
        if cmd == "running":
            return f"Program running: {str(st.program_running).lower()}"
        if cmd == "is in remote control":
            return "true"
        if cmd == "stop":
            st.stop_program()
            return "Stopped"
        if cmd == "pause":
            st.stop_program()
            return "Pausing program"
        if cmd == "play":
            if st.last_program_text and not st.program_running:
                st.start_program(st.last_program_text)
                return "Starting program"
            return "Failed to execute: play"
        if cmd.startswith("load "):
            return f"File not found: {line[5:]}"  # the twin has no PolyScope programs on disk
        if cmd == "get loaded program":
            return "No program loaded"
        if cmd in ("power on", "power off", "brake release"):
            return {"power on": "Powering on", "power off": "Powering off", "brake release": "Brake releasing"}[cmd]
        if cmd == "unlock protective stop":
            return "Protective stop releasing"
        if cmd == "close safety popup":
            return "closing safety popup"
        if cmd == "close popup":
            return "closing popup"
        if cmd.startswith("popup "):
            return "showing popup"
        if cmd.startswith("addtolog "):
            return "Added log message"
        if cmd == "isprogramsaved":
            return "true <unnamed>"
        if cmd.startswith("twin reset"):
            # Twin-only extension (no UR controller has it): put the T block at a seeded random pose, the way a
            # person resets the real scene between episodes. The arm is left where it is.
            parts = cmd.split()
            seed = int(parts[2]) if len(parts) > 2 and parts[2].lstrip("-").isdigit() else 0
            with st.lock:
                st.sim.reset_block(seed)
            return f"twin scene reset (seed {seed})"
        if cmd == "quit":
            return "Disconnected"
        if cmd == "shutdown":
            st.stop_event.set()
            return "Shutting down"
        return f"could not understand: '{line}'"


# ---------------------------------------------------------------------------------------------------------------
# Script servers (primary 30002 / secondary 30003): receive URScript programs
# ---------------------------------------------------------------------------------------------------------------
_PROGRAM = re.compile(r"^def (\w+)\(\):\n.*?^end\s*$", re.S | re.M)


class _ScriptHandler(socketserver.BaseRequestHandler):
    station: Station

    def handle(self):
        buf = ""
        while True:
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk.decode("utf-8", "replace")
            while (m := _PROGRAM.search(buf)) is not None:
                self._run(m.group(1), m.group(0))
                buf = buf[m.end():]

    def _run(self, name: str, text: str) -> None:
        if name == "rtde_control":
            self.station.start_program(text)
        else:
            # A real controller would run it; the twin emulates only ur_rtde's control program and says so.
            log.error("twin cannot run URScript program %r (only ur_rtde's rtde_control program is emulated)",
                      name)


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
          seed: int = 0, parent_pid: int | None = None) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the twin binds loopback addresses only (127.x.y.z), got {host!r}")
    station = Station(host, frequency, image_hw=image_hw, camera_fps=camera_fps, render=render, seed=seed)
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
    p.add_argument("--seed", type=int, default=0, help="initial T-block pose seed")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="stop when this process (the launcher) exits; set by TwinProcess")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[twin %(levelname)s] %(message)s")
    os.environ.setdefault("MUJOCO_GL", "egl")
    serve(a.host, a.frequency, render=not a.no_render, image_hw=tuple(a.image_size), camera_fps=a.camera_fps,
          seed=a.seed, parent_pid=a.parent_pid)
