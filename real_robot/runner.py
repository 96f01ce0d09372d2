"""Control loops on a station: teleoperation (record demonstrations) and policy execution.

Policy execution (the timeline, control period dt, k actions executed per inference):

    inference thread   | obs(t0) -> policy ... -> chunk(t0) | obs(t1) -> policy ... -> chunk(t1) |
    main thread        |   schedule chunk(t_prev) at t0+dt.. |   schedule chunk(t0) at t0+dt..      |
    arm controller     | servo at 125/500 Hz along the scheduled trajectory, continuously          |

Inference runs in its own thread (torch releases the GIL), so the arm keeps executing the previous chunk while
the next one is computed; every action carries the time it is meant for (t_obs + j*dt), so inference latency
shifts *which* actions are still fresh, never *when* they run. Stale ones are dropped and counted.

Watchdog: if no fresh chunk arrives for ``policy_timeout`` (policy stalled) or the camera stalls, the arm is
told to hold; the policy resumes once observations flow again. The e-stop and Ctrl-C hold the arm and end the
run; the caller's ``finally`` commits the recording and stops the arm.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from real_robot.cameras import CameraStalled
from real_robot.station import PushTStation, StepCounters
from real_robot.safety import EStop

log = logging.getLogger(__name__)


def precise_wait(t_end: float, spin: float = 0.002) -> None:
    """Sleep until wall-clock ``t_end``; the last ``spin`` seconds busy-wait (sleep overshoots ~0.1-1 ms)."""
    while True:
        remaining = t_end - time.time()
        if remaining <= 0:
            return
        if remaining > spin:
            time.sleep(remaining - spin)


def as_action_chunk(out) -> np.ndarray:
    """Policy output {"action": (1, n, Da)} (numpy or torch) -> (n, Da) float64."""
    act = out["action"] if isinstance(out, dict) else out
    if hasattr(act, "detach"):
        act = act.detach().cpu().numpy()
    act = np.asarray(act, dtype=np.float64)
    if act.ndim == 3:
        act = act[0]
    if act.ndim != 2:
        raise ValueError(f"policy must return action of shape (1, n, Da); got {act.shape}")
    return act


@dataclass
class RunReport(StepCounters):
    """A run's outcome. The station counts sent/stale/clipped actions straight into it: during a run the
    report *is* ``station.counters``, so no counter is kept twice."""
    steps: int = 0
    chunks: int = 0
    camera_stalls: int = 0
    watchdog_holds: int = 0
    latency_ms: list | None = None  # obs capture -> chunk handed to the arm, per chunk
    inference_ms: list | None = None  # the policy call alone, per chunk (the rest is observation age)
    stopped_by: str = ""

    def summary(self) -> dict:
        d = asdict(self)
        for key in ("latency_ms", "inference_ms"):
            v = np.asarray(getattr(self, key) or [])
            d[key] = ({"p50": float(np.median(v)), "p99": float(np.percentile(v, 99)), "max": float(v.max())}
                      if len(v) else None)
        total = self.actions_sent + self.actions_stale
        d["stale_share"] = self.actions_stale / total if total else 0.0
        return d


def run_teleop(station: PushTStation, teleop, estop: EStop, max_speed: float = 0.12, max_duration: float = 60.0,
               on_step=None) -> RunReport:
    """Drive the pusher with a 6-DoF device (x/y axes, m/s at full deflection) until button 0, the e-stop or
    ``max_duration``; records each control step if the station is recording."""
    cfg = station.cfg
    dt = cfg.dt
    report = RunReport(latency_ms=[])
    station.counters = report
    target = station.clip_xy(station.arm.get_state()["tcp_pose"][0, :2])
    t_start = time.time()
    step = 0
    while True:
        t_cycle_end = t_start + (step + 1) * dt
        state = teleop.read()
        if state.estop:
            estop.trip("e-stop key")
        if estop.tripped:
            station.hold()
            report.stopped_by = estop.reason
            break
        if state.buttons[0]:
            report.stopped_by = "button"
            break
        if time.time() - t_start > max_duration:
            report.stopped_by = "max_duration"
            break
        try:
            obs = station.get_obs()
        except CameraStalled as e:
            log.warning("%s: holding", e)
            report.camera_stalls += 1
            station.hold()
            precise_wait(t_cycle_end)
            step += 1
            continue
        target = station.clip_xy(target + state.axes[:2] * max_speed * dt)
        station.exec_actions(target[None], [t_cycle_end + dt])
        station.record_step(obs, target)
        if on_step is not None:
            on_step(step, obs)
        precise_wait(t_cycle_end)
        step += 1
    report.steps = step
    return report


class _InferenceLoop(threading.Thread):
    """Observe -> infer -> hand the chunk over, once per execution horizon, in its own thread."""

    def __init__(self, station: PushTStation, policy, horizon_s: float, t_start: float, phase_lock: bool = True):
        super().__init__(daemon=True, name="policy-inference")
        self.station, self.policy, self.horizon_s, self.t_start = station, policy, horizon_s, t_start
        self.phase_lock = phase_lock
        self.chunks: queue.Queue = queue.Queue(maxsize=2)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.camera_stalls = 0

    def run(self) -> None:
        i = 0
        try:
            while not self.stop_event.is_set():
                precise_wait(self.t_start + i * self.horizon_s)
                i += 1
                if self.phase_lock:  # observe the moment the next frame lands (at most one frame period later)
                    self.station.wait_for_frame(timeout=0.1)
                try:
                    obs = self.station.get_obs()
                except CameraStalled as e:
                    self.camera_stalls += 1
                    log.warning("%s: policy paused, arm holds", e)
                    self.station.hold()
                    continue
                policy_obs = {k: v for k, v in obs.items() if not k.startswith("_") and k != "timestamp"}
                t0 = time.time()
                chunk = as_action_chunk(self.policy(policy_obs))
                self.chunks.put((obs, chunk, time.time() - t0))
        except BaseException as e:  # noqa: BLE001 - surfaced to the main loop, which stops the arm
            self.error = e


def run_policy(station: PushTStation, policy, estop: EStop, n_action_steps: int = 8, duration: float = 10.0,
               policy_timeout: float | None = None, on_chunk=None, done=None, phase_lock: bool = True) -> RunReport:
    """Run ``policy`` (callable: obs dict of (n_obs_steps, ...) arrays -> {"action": (1, n, 2)}) closed loop.

    ``done``: optional callable checked once per control period; when it returns true the arm holds and the
    run ends (``stopped_by == "done"``), e.g. the task's success test on the twin.

    Each chunk's j-th action is scheduled at t_obs + j*dt (j = 1..); stale ones are dropped by the station.
    ``phase_lock``: observe right after a camera frame arrives (Station.wait_for_frame) rather than at the
    horizon tick, so the observation is fresh and fewer of the chunk's first actions are already past.
    """
    cfg = station.cfg
    dt = cfg.dt
    horizon_s = n_action_steps * dt
    policy_timeout = policy_timeout or max(3 * horizon_s, 1.0)
    report = RunReport(latency_ms=[], inference_ms=[])
    station.counters = report
    t_start = time.time()
    loop = _InferenceLoop(station, policy, horizon_s, t_start, phase_lock=phase_lock)
    loop.start()
    last_chunk_t = time.time()
    held = False
    step = 0

    def dispatch(obs, chunk, inference_s) -> None:
        nonlocal held, last_chunk_t
        held = False
        last_chunk_t = time.time()
        t_obs = obs["timestamp"][-1]
        times = t_obs + dt * np.arange(1, len(chunk) + 1)
        station.exec_actions(chunk[:n_action_steps, :2], times[:n_action_steps])
        report.chunks += 1
        report.latency_ms.append((time.time() - t_obs) * 1e3)
        report.inference_ms.append(inference_s * 1e3)
        if on_chunk is not None:
            on_chunk(obs, chunk)

    try:
        while True:  # one pass per control period: watchdog, record; chunks are dispatched the moment they arrive
            if estop.tripped:
                station.hold()
                report.stopped_by = estop.reason
                break
            if time.time() - t_start > duration:
                report.stopped_by = "duration"
                break
            if loop.error is not None:
                raise loop.error
            if done is not None and done():
                station.hold()
                report.stopped_by = "done"
                break
            if time.time() - last_chunk_t > policy_timeout and not held:
                log.warning("watchdog: no policy output for %.2f s; arm holds", time.time() - last_chunk_t)
                station.hold()
                report.watchdog_holds += 1
                held = True
            if station.recording:
                try:
                    obs = station.get_obs()
                    station.record_step(obs, station.commanded_xy(obs["timestamp"][-1], obs["agent_pos"][-1]))
                    report.steps += 1
                except CameraStalled:
                    pass
            step += 1
            # Until the next control tick, hand each chunk to the arm as soon as inference delivers it: a chunk
            # left waiting for the tick would lose up to one dt of its actions to staleness.
            t_next = t_start + step * dt
            while True:
                remaining = t_next - time.time()
                try:
                    item = loop.chunks.get(timeout=remaining) if remaining > 0 else loop.chunks.get_nowait()
                except queue.Empty:
                    break
                dispatch(*item)
            precise_wait(t_next)
    except KeyboardInterrupt:
        estop.trip("Ctrl-C")
        station.hold()
        report.stopped_by = "Ctrl-C"
        raise
    finally:
        loop.stop_event.set()
        loop.join(timeout=5)
        report.camera_stalls = loop.camera_stalls
    return report
