"""Timed TCP pose trajectories for the arm controller: linear in position, slerp in rotation (scipy), with
speed caps applied when a waypoint is scheduled.

The controller samples the trajectory once per control period and servoes to the sample, so actions that
arrive at 10 Hz become a smooth 125/500 Hz servo stream, and a waypoint that would need a faster move than the
caps allow is pushed later in time instead of being reached violently.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


class PoseTrajectory:
    """Piecewise-linear pose trajectory over strictly increasing times; holds the end poses outside its span."""

    def __init__(self, times, poses):
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 6)
        if len(times) != len(poses) or len(times) == 0:
            raise ValueError(f"need as many times as poses (got {len(times)} and {len(poses)}), at least one")
        if np.any(np.diff(times) <= 0):
            raise ValueError("trajectory times must increase strictly")
        if not np.all(np.isfinite(poses)):
            raise ValueError("trajectory poses must be finite")
        self.times, self.poses = times, poses
        if len(times) > 1:
            self._slerp = Slerp(times, Rotation.from_rotvec(poses[:, 3:]))

    @property
    def start_time(self) -> float:
        return float(self.times[0])

    @property
    def end_time(self) -> float:
        return float(self.times[-1])

    def __call__(self, t):
        """Pose(s) at time(s) ``t``: (6,) for a scalar, (n, 6) for an array."""
        t_arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if len(self.times) == 1:
            out = np.repeat(self.poses, len(t_arr), axis=0)
        else:
            tc = np.clip(t_arr, self.times[0], self.times[-1])
            pos = np.stack([np.interp(tc, self.times, self.poses[:, i]) for i in range(3)], axis=-1)
            out = np.concatenate([pos, self._slerp(tc).as_rotvec()], axis=-1)
        return out[0] if np.ndim(t) == 0 else out

    def trimmed(self, start: float, end: float) -> "PoseTrajectory":
        """The part within [start, end], with the poses at both ends added as knots."""
        assert end >= start
        inner = (self.times > start) & (self.times < end)
        times = np.concatenate([[start], self.times[inner], [end]])
        if end == start:
            times = times[:1]
        return PoseTrajectory(times, self(times))

    def schedule_waypoint(self, pose, time: float, now: float, max_pos_speed: float,
                          max_rot_speed: float) -> "PoseTrajectory":
        """A new trajectory ending in ``pose`` at ``time``, or later if reaching it from the last kept knot would
        exceed the speed caps (m/s, rad/s). A waypoint after the current plan's end is appended to the plan; one
        at or before it replaces the plan from ``now`` on (a newer action chunk supersedes the older one)."""
        pose = np.asarray(pose, dtype=np.float64)
        if time <= now:
            raise ValueError(f"waypoint time {time:.4f} is not after now ({now:.4f}): stale actions must be dropped "
                             "before they reach the trajectory")
        cut = max(now, self.end_time) if time > self.end_time else now
        kept = self.trimmed(now, cut)
        last_t, last_pose = kept.times[-1], kept.poses[-1]
        dist = np.linalg.norm(pose[:3] - last_pose[:3])
        angle = (Rotation.from_rotvec(last_pose[3:]).inv() * Rotation.from_rotvec(pose[3:])).magnitude()
        min_duration = max(dist / max_pos_speed, angle / max_rot_speed)
        t_new = max(time, last_t + min_duration, last_t + 1e-6)
        return PoseTrajectory(np.append(kept.times, t_new), np.vstack([kept.poses, pose]))

    def hold(self, now: float) -> "PoseTrajectory":
        """Stay where the trajectory is at ``now``: pending waypoints are dropped."""
        return PoseTrajectory([now], [self(now)])
