"""UR arm over RTDE (``ur_rtde``): a controller process servoing along a timed pose trajectory.

Why a process: servoL must go out every 2 ms (e-series, 500 Hz) or 8 ms (CB3, 125 Hz) whatever the policy,
camera or Python's GIL are doing in the main process. The main process talks to it through a command queue
(timestamped waypoints, hold, stop) and reads its state from a shared-memory ring, each sample stamped with
the wall-clock time it was received.

Guarantees the controller itself enforces (the last line of defence, whatever the caller does):
  * a waypoint whose time is not at least one period in the future is *stale*: dropped and counted, never run;
  * a non-finite pose is rejected, the arm holds where it is;
  * positions are clipped into the workspace box (logged);
  * speeds are capped by the trajectory (``max_pos_speed`` m/s, ``max_rot_speed`` rad/s);
  * on stop, error, lost connection or Ctrl-C it calls servoStop + stopScript and disconnects.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np

from real_robot.interpolator import PoseTrajectory
from real_robot.safety import UnsafeCommand, Workspace
from real_robot.shm_ring import SharedRing

log = logging.getLogger(__name__)

# Counters the controller publishes with every state sample (index into ``stats``).
STATS = ("waypoints", "stale_dropped", "rejected", "clipped", "holds", "late_periods", "min_slack_us", "loops")
ARM_STATE_SPEC = {
    "tcp_pose": ((6,), np.float64), "tcp_speed": ((6,), np.float64), "q": ((6,), np.float64),
    "qd": ((6,), np.float64), "target_tcp_pose": ((6,), np.float64), "robot_time": ((), np.float64),
    "period": ((), np.float64), "stats": ((len(STATS),), np.int64),
}


class ArmError(RuntimeError):
    """The controller process failed or lost the robot; the message says what and what to check."""


@dataclass
class ArmConfig:
    host: str
    frequency: float = 500.0  # 500 Hz e-series, 125 Hz CB3
    workspace_low: tuple = (-0.25, -0.65, 0.01)
    workspace_high: tuple = (0.25, -0.20, 0.30)
    max_pos_speed: float = 0.25  # m/s
    max_rot_speed: float = 0.6  # rad/s
    lookahead_time: float = 0.1  # servoL, as the reference (0.03..0.2)
    gain: float = 300.0  # servoL (100..2000)
    tcp_offset: tuple | None = None  # set on the controller if given; None keeps the pendant's TCP
    connection_timeout: float = 1.0  # s without a new robot timestamp -> lost connection


class RTDEArm:
    """Arm interface: ``schedule_waypoint`` / ``hold`` / ``get_state`` / ``stop``. Use as a context manager."""

    def __init__(self, config: ArmConfig, ring_capacity: int = 1024):
        self.config = config
        ctx = mp.get_context("spawn")  # no fork of a process that may hold torch / render threads
        self._ring = SharedRing.create(f"robodiff_arm_{uuid.uuid4().hex[:12]}", ARM_STATE_SPEC, ring_capacity)
        self._cmd = ctx.Queue()
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._error = ctx.Array("c", 1024)
        self._proc = ctx.Process(target=_controller_main, name=f"ur-controller-{config.host}", daemon=True,
                                 args=(asdict(config), self._ring.name, ring_capacity, self._cmd, self._ready,
                                       self._stop, self._error))

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "RTDEArm":
        self._proc.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                died = not self._proc.is_alive()
                self.stop()
                raise ArmError(self.error or (
                    f"arm controller process for {self.config.host} exited (code {self._proc.exitcode}) "
                    "before it was ready" if died else
                    f"arm controller for {self.config.host} did not start within {timeout:.0f} s"))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop servoing, end the control program, disconnect. Safe to call twice."""
        self._stop.set()
        if self._proc.pid is not None:  # started
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout)
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- commands -------------------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        if not self._proc.is_alive():
            raise ArmError(self.error or "arm controller process is not running")

    def schedule_waypoint(self, pose, target_time: float) -> None:
        """Reach TCP ``pose`` [x,y,z,rx,ry,rz] at wall-clock ``target_time`` (time.time())."""
        self._check_alive()
        self._cmd.put(("waypoint", np.asarray(pose, dtype=np.float64), float(target_time)))

    def hold(self) -> None:
        """Drop pending waypoints and stay at the current trajectory pose."""
        self._check_alive()
        self._cmd.put(("hold",))

    # -- state ----------------------------------------------------------------------------------------------
    def get_state(self, k: int = 1) -> dict[str, np.ndarray]:
        """Newest ``k`` samples (oldest first): tcp_pose, q, ..., ``timestamp`` (wall clock at receipt)."""
        return self._ring.last(k)

    def stats(self) -> dict[str, int]:
        return dict(zip(STATS, self._ring.last(1)["stats"][0].tolist()))

    @property
    def error(self) -> str:
        return self._error.value.decode("utf-8", "replace")

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()


def _controller_main(cfg: dict, ring_name: str, capacity: int, cmd_q, ready, stop, error) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it asks us to stop
    logging.basicConfig(level=logging.INFO, format=f"[ur-controller {os.getpid()} %(levelname)s] %(message)s")
    cfg = ArmConfig(**cfg)
    ring = SharedRing.attach(ring_name, ARM_STATE_SPEC, capacity, child_of_owner=True)

    def fail(msg: str) -> None:
        log.error(msg)
        error.value = msg.encode("utf-8")[:1023]

    import rtde_control
    import rtde_receive

    try:
        rtde_r = rtde_receive.RTDEReceiveInterface(cfg.host, cfg.frequency)
        rtde_c = rtde_control.RTDEControlInterface(cfg.host, cfg.frequency)
    except RuntimeError as e:
        fail(f"cannot connect to the UR controller at {cfg.host}: {e}. Check the robot is on, in remote control, "
             "and reachable (ping), and that no other program holds its RTDE inputs.")
        ring.close()
        return
    lost = False
    try:
        _servo_loop(cfg, rtde_c, rtde_r, ring, cmd_q, ready, stop)
    except ConnectionLost as e:
        lost = True
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - report every failure to the parent, then stop the arm
        lost = not (rtde_r.isConnected() and rtde_c.isConnected())
        if lost:
            fail(f"lost the connection to the UR controller at {cfg.host} ({e}). The arm controller stopped; "
                 "check the network cable and that the robot is powered and in remote control.")
        else:
            fail(f"arm controller stopped: {type(e).__name__}: {e}")
    finally:
        ring.close()
        if lost:
            # Nothing to stop on the far side; ur_rtde's clients would now retry reconnecting inside their
            # destructors (for seconds), so leave without running them.
            os._exit(1)
        for call in ("servoStop", "stopScript"):
            try:
                getattr(rtde_c, call)()
            except Exception:  # noqa: BLE001 - best effort; the controller may be going away
                pass
        for iface in (rtde_c, rtde_r):
            try:
                iface.disconnect()
            except Exception:  # noqa: BLE001
                pass


class ConnectionLost(RuntimeError):
    pass


def _servo_loop(cfg: ArmConfig, rtde_c, rtde_r, ring: SharedRing, cmd_q, ready, stop) -> None:
    dt = 1.0 / cfg.frequency
    workspace = Workspace(cfg.workspace_low, cfg.workspace_high)
    if cfg.tcp_offset is not None:
        rtde_c.setTcp(list(cfg.tcp_offset))
    now = time.time()
    traj = PoseTrajectory([now], [rtde_r.getActualTCPPose()])
    stats = dict.fromkeys(STATS, 0)
    stats["min_slack_us"] = 2**62
    last_robot_t, last_robot_change = -1.0, time.monotonic()
    t_prev = time.perf_counter()
    parent = mp.parent_process()
    check_parent_every = max(1, int(cfg.frequency) // 4)
    while not stop.is_set():
        if stats["loops"] % check_parent_every == 0 and parent is not None and not parent.is_alive():
            # the process that commands us died without stopping us (SIGKILL, crash): stop the arm
            log.error("the commanding process is gone: stopping the arm")
            # No one is left to stop us if the stop calls below hang (e.g. the controller went away too).
            threading.Timer(5.0, os._exit, args=(1,)).start()
            break
        t_period = rtde_c.initPeriod()
        now = time.time()
        target = traj(now)
        if not rtde_c.servoL(target.tolist(), 0.5, 0.5, dt, cfg.lookahead_time, cfg.gain):
            raise ConnectionLost(f"the controller at {cfg.host} refused servoL: its control program stopped "
                                 "(stopped from the pendant, protective stop or lost connection)")
        robot_t = rtde_r.getTimestamp()
        mono = time.monotonic()
        if robot_t != last_robot_t:
            last_robot_t, last_robot_change = robot_t, mono
        elif not rtde_r.isConnected():
            raise ConnectionLost(f"lost the connection to the UR controller at {cfg.host}: it closed the RTDE "
                                 "connection. Arm controller stopped; check the cable / robot power.")
        elif mono - last_robot_change > cfg.connection_timeout:
            raise ConnectionLost(f"lost the connection to the UR controller at {cfg.host}: no robot state for "
                                 f"{mono - last_robot_change:.2f} s. Arm controller stopped; check the cable / "
                                 "robot power.")
        t_now = time.perf_counter()
        period = t_now - t_prev
        t_prev = t_now
        stats["loops"] += 1
        stats["late_periods"] += period > 1.5 * dt
        stats["clipped"] = workspace.n_clipped
        ring.put(time.time(), tcp_pose=rtde_r.getActualTCPPose(), tcp_speed=rtde_r.getActualTCPSpeed(),
                 q=rtde_r.getActualQ(), qd=rtde_r.getActualQd(), target_tcp_pose=target, robot_time=robot_t,
                 period=period, stats=[stats[k] for k in STATS])
        ready.set()
        while True:
            try:
                cmd = cmd_q.get_nowait()
            except queue.Empty:
                break
            now = time.time()
            if cmd[0] == "waypoint":
                _, pose, t_target = cmd
                if t_target < now + dt:  # would be due before the next servo tick: stale
                    stats["stale_dropped"] += 1
                    continue
                try:
                    pose = workspace.check_pose(pose)
                except UnsafeCommand as e:
                    stats["rejected"] += 1
                    log.error("%s; holding position", e)
                    traj = traj.hold(now)
                    continue
                traj = traj.schedule_waypoint(pose, t_target, now, cfg.max_pos_speed, cfg.max_rot_speed)
                stats["waypoints"] += 1
                stats["min_slack_us"] = min(stats["min_slack_us"], int((t_target - now) * 1e6))
            elif cmd[0] == "hold":
                traj = traj.hold(now)
                stats["holds"] += 1
        rtde_c.waitPeriod(t_period)
