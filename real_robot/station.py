"""The Push-T task on a UR station: timestamp-aligned observations in, wall-clock-scheduled actions out,
episodes recorded to a ReplayBuffer plus a video.

Observation at control step t (``n_obs_steps`` = n, control period dt):
    obs times   tau_i = t_ref - (n-1-i)*dt, t_ref = capture time of the newest frame of the slowest camera
    image_i     the newest frame captured at or before tau_i (per camera; keys from ``image_keys``)
    agent_pos_i the TCP xy interpolated at tau_i from the arm's state ring (sampled at 125/500 Hz)
so image and proprioception describe the same instant, whatever the transport delays were.

Actions: an action chunk a_1..a_k computed from an observation stamped t_obs is meant for times
t_obs + j*dt (j = 1..k). Those already due (within ``action_latency`` of now) are *stale*: dropped and
counted, never sent. Units: agent_pos and actions are TCP xy in the robot base frame (metres); the tool height
and orientation are fixed for this planar task.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from real_robot.cameras import CameraStalled, RingCamera

log = logging.getLogger(__name__)


def image_keys(cameras) -> dict[str, tuple[str, str]]:
    """Camera name -> (observation key, recorded key), cameras in the station's order. The first camera is
    ``image`` / ``img``, Push-T's names, so one-camera policies and recordings read as they always did; every other
    camera is named after itself (``image_side`` / ``img_side``), so its key does not depend on its position."""
    return {cam: ("image", "img") if i == 0 else (f"image_{cam}", f"img_{cam}") for i, cam in enumerate(cameras)}


@dataclass
class PushTTaskConfig:
    control_hz: float = 10.0
    n_obs_steps: int = 2
    push_z: float = 0.015  # TCP (pusher tip) height above the table, m
    tool_rotvec: tuple = (np.pi, 0.0, 0.0)  # pusher pointing down
    xy_low: tuple = (-0.20, -0.62)  # the Push-T square on the table, base frame (m)
    xy_high: tuple = (0.20, -0.22)
    action_latency: float = 0.01  # actions due sooner than this are stale (s)

    @property
    def dt(self) -> float:
        return 1.0 / self.control_hz


@dataclass
class StepCounters:
    actions_sent: int = 0
    actions_stale: int = 0
    actions_clipped: int = 0
    chunks_rejected: int = 0
    holds: int = 0


class PushTStation:
    """``get_obs`` / ``exec_actions`` / episode recording over an Arm and Camera(s)."""

    def __init__(self, arm, cameras: dict[str, RingCamera], config: PushTTaskConfig | None = None, mocap=None):
        """``mocap``: optional object tracker with ``get(k) -> {"timestamp", "block_pose_px"}`` (on the twin,
        its ground truth); its samples are aligned like camera frames."""
        self.arm, self.cameras, self.mocap = arm, cameras, mocap
        self.image_keys = image_keys(cameras)
        self.cfg = config or PushTTaskConfig()
        self.counters = StepCounters()
        self._episode: dict[str, list] | None = None
        self._sent: deque = deque(maxlen=64)  # (time, xy) of actions sent to the arm

    # -- observations ---------------------------------------------------------------------------------------
    def wait_for_frame(self, timeout: float = 0.1) -> bool:
        """Phase-lock to the cameras: block until every camera has delivered a frame newer than the ones it
        held at the call (True), or ``timeout`` s pass (False; get_obs then decides whether they stalled).
        Observing right after a frame arrives makes the newest frame ~0 ms old instead of up to one frame
        period, which the actions scheduled from its timestamp would otherwise lose to staleness."""
        deadline = time.monotonic() + timeout
        counts = {name: cam.frame_count for name, cam in self.cameras.items()}
        return all(cam.wait_new_frame(counts[name], max(0.0, deadline - time.monotonic()))
                   for name, cam in self.cameras.items())

    def get_obs(self) -> dict[str, np.ndarray]:
        """{"image": (n, 3, H, W) float32 in [0, 1] (first camera), "image_<cam>" for others,
        "agent_pos": (n, 2) float32, "timestamp": (n,) float64}, and "_frames": {recorded key: newest uint8
        frame} for recording. Raises CameraStalled. Without cameras the newest arm state sets the time reference
        (proprioception-only policies)."""
        n, dt = self.cfg.n_obs_steps, self.cfg.dt
        frames = {}
        for name, cam in self.cameras.items():
            frames[name] = cam.get(k=max(4, int(np.ceil(n * dt * 60)) + 2))
        state = self.arm.get_state(k=256)
        st = state["timestamp"]
        t_ref = min(f["timestamp"][-1] for f in frames.values()) if frames else st[-1]
        obs_t = t_ref - dt * np.arange(n - 1, -1, -1)
        obs = {"timestamp": obs_t, "_frames": {}}
        for name, f in frames.items():
            idx = np.clip(np.searchsorted(f["timestamp"], obs_t, side="right") - 1, 0, None)
            imgs = f["color"][idx]
            obs_key, recorded_key = self.image_keys[name]
            obs[obs_key] = np.moveaxis(imgs, -1, 1).astype(np.float32) / 255.0
            obs["_frames"][recorded_key] = imgs[-1]
        if obs_t[0] < st[0]:
            log.debug("robot state ring does not reach back to the oldest obs time; using its oldest sample")
        xy = np.stack([np.interp(obs_t, st, state["tcp_pose"][:, j]) for j in range(2)], axis=-1)
        obs["agent_pos"] = xy.astype(np.float32)
        if self.mocap is not None:
            m = self.mocap.get(16)
            idx = np.clip(np.searchsorted(m["timestamp"], obs_t, side="right") - 1, 0, None)
            obs["block_pose_px"] = m["block_pose_px"][idx]
        obs["_tcp_pose"] = state["tcp_pose"][-1]
        obs["_q"] = state["q"][-1]
        return obs

    # -- actions --------------------------------------------------------------------------------------------
    def pose_of(self, xy) -> np.ndarray:
        return np.array([xy[0], xy[1], self.cfg.push_z, *self.cfg.tool_rotvec], dtype=np.float64)

    def clip_xy(self, xy) -> np.ndarray:
        return np.clip(np.asarray(xy, dtype=np.float64), self.cfg.xy_low, self.cfg.xy_high)

    def exec_actions(self, actions, timestamps) -> int:
        """Schedule xy targets at wall-clock times; returns how many were sent. A chunk with a non-finite
        value is rejected as a whole and the arm holds."""
        actions = np.asarray(actions, dtype=np.float64).reshape(-1, 2)
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(actions) != len(timestamps):
            raise ValueError(f"{len(actions)} actions but {len(timestamps)} timestamps")
        if not np.all(np.isfinite(actions)):
            self.counters.chunks_rejected += 1
            log.error("action chunk with NaN/inf rejected; arm holds position")
            self.hold()
            return 0
        fresh = timestamps > time.time() + self.cfg.action_latency
        self.counters.actions_stale += int((~fresh).sum())
        for xy, t in zip(actions[fresh], timestamps[fresh]):
            safe = self.clip_xy(xy)
            if not np.array_equal(safe, xy):
                self.counters.actions_clipped += 1
                log.warning("action %s outside the task area %s..%s: clipped", np.round(xy, 4).tolist(),
                            self.cfg.xy_low, self.cfg.xy_high)
            self.arm.schedule_waypoint(self.pose_of(safe), t)
            self._sent.append((t, safe))
        self.counters.actions_sent += int(fresh.sum())
        return int(fresh.sum())

    def commanded_xy(self, t: float, default) -> np.ndarray:
        """The target the arm is heading to at time ``t``: the earliest sent action due after ``t`` (else the
        last one sent, else ``default``). What a recording stores as the action of a policy-driven step."""
        later = [xy for ts, xy in self._sent if ts > t]
        if later:
            return later[0]
        return self._sent[-1][1] if self._sent else np.asarray(default, dtype=np.float64)

    def hold(self) -> None:
        self.counters.holds += 1
        self._sent.clear()
        self.arm.hold()

    # -- recording ------------------------------------------------------------------------------------------
    def start_episode(self) -> None:
        images = [recorded for _, recorded in self.image_keys.values()]
        self._episode = {k: [] for k in ("timestamp", *images, "agent_pos", "action", "robot_eef_pose",
                                         "robot_joint", "block_pose_px")}

    @property
    def recording(self) -> bool:
        return self._episode is not None

    def record_step(self, obs: dict, action_xy) -> None:
        """One control step: the newest aligned frame of each camera and state, and the action commanded at
        this step."""
        if self._episode is None:
            return
        ep = self._episode
        ep["timestamp"].append(obs["timestamp"][-1])
        for key, frame in obs.get("_frames", {}).items():
            ep[key].append(frame)
        ep["agent_pos"].append(obs["agent_pos"][-1])
        ep["action"].append(np.asarray(action_xy, dtype=np.float32))
        ep["robot_eef_pose"].append(obs["_tcp_pose"])
        ep["robot_joint"].append(obs["_q"])
        if "block_pose_px" in obs:
            ep["block_pose_px"].append(obs["block_pose_px"][-1])

    def end_episode(self, replay_buffer, video_dir: str | Path | None = None, convert=None,
                    discard: bool = False) -> int | None:
        """Commit the episode (also after Ctrl-C: call it from ``finally``). Returns its index, or None if it
        had no steps or ``discard``. ``convert``: episode dict -> dict stored instead (e.g. another layout).
        The video shows every camera side by side, in the station's order."""
        ep, self._episode = self._episode, None
        if discard or not ep or not ep["timestamp"]:
            return None
        images = {k: np.stack(ep[k]).astype(np.uint8) for _, k in self.image_keys.values() if ep[k]}
        data = {
            "timestamp": np.asarray(ep["timestamp"], dtype=np.float64),
            **images,
            "agent_pos": np.asarray(ep["agent_pos"], dtype=np.float32),
            "action": np.asarray(ep["action"], dtype=np.float32),
            "robot_eef_pose": np.asarray(ep["robot_eef_pose"], dtype=np.float32),
            "robot_joint": np.asarray(ep["robot_joint"], dtype=np.float32),
            **({"block_pose_px": np.asarray(ep["block_pose_px"], dtype=np.float32)} if ep["block_pose_px"] else {}),
        }
        idx = replay_buffer.add_episode(convert(data) if convert is not None else data)
        if video_dir is not None and images:
            import imageio.v3 as iio

            path = Path(video_dir) / f"episode_{idx:04d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, np.concatenate(list(images.values()), axis=2), plugin="pyav", fps=self.cfg.control_hz,
                        codec="libx264")
        log.info("episode %d recorded: %d steps", idx, len(data["timestamp"]))
        return idx


__all__ = ["PushTStation", "PushTTaskConfig", "StepCounters", "CameraStalled", "image_keys"]
