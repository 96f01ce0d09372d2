"""The twin's controller: MuJoCo physics of ``envs.ur5e_pusht`` stepped at the controller rate, the state a UR
controller reports, the running ur_rtde control program, and the cameras rendering into shared-memory rings.
One lock guards it; the protocol servers (rtde_server, dashboard, script_server) read and drive it."""

from __future__ import annotations

import logging
import re
import threading
import time

from real_robot.shm_ring import SharedRing
from real_robot.twin.addresses import (DEFAULT_CAMERAS, TRUTH_RING_SPEC, camera_ring_name, camera_ring_spec,
                                       truth_ring_name, unlink_stale)
from real_robot.twin.control_program import ControlProgram

log = logging.getLogger("real_robot.twin")

E_SERIES_VERSION = (5, 11, 6, 108249)
CB3_VERSION = (3, 15, 7, 106331)
RUNNING, STOPPED, PLAYING = 7, 1, 2  # robot_mode RUNNING; runtime_state STOPPED / PLAYING


class Station:
    """Physics + controller state shared by the stepping loop and the server threads (one lock)."""

    def __init__(self, host: str, frequency: float, image_hw=(96, 96), camera_fps: float = 30.0,
                 cameras=DEFAULT_CAMERAS, render: bool = True, seed: int = 0):
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
