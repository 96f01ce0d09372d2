"""A scripted Push-T operator for the twin: it sees the simulated scene (ground truth) and deflects a virtual
stick, so its demonstrations go through exactly the teleop path a person with a SpaceMouse uses.

Planner (Push-T pixel frame, greedy, re-planned after every push):
  1. candidate contacts every ~8 px along the T's edges, each pushed along its inward normal;
  2. predict each push's effect with the quasi-static point-push model on an ellipsoidal limit surface:
     pushing a distance delta at lever r (from the centroid) along d moves the centroid alpha*d and turns the
     block alpha*(r x d)/c^2, alpha = delta / (1 + (r x d)^2 / c^2), c = the T's radius of gyration;
  3. take the push leaving the smallest pose error (position + c * angle) with a small travel penalty;
  4. approach its pre-contact point orbiting the block at a safe radius when the straight path would hit it,
     then push a short stroke and re-plan.
It is an expert for data, not a planner of record: good enough to reach high coverage often, not always.
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString, Point

from envs.pusht.protocol import SUCCESS_THRESHOLD
from envs.ur5e_pusht.model import GOAL_POSE_PX, PX, PUSHER_RADIUS, T_CENTROID_PX, table_to_px
from envs.ur5e_pusht.sim import t_polygon_px

R_PUSHER = PUSHER_RADIUS / PX  # px
GYRATION = 38.0  # px, radius of gyration of the T about its centroid (area-weighted)
ANGLE_WEIGHT = GYRATION


def _centroid(pose) -> np.ndarray:
    x, y, a = pose
    return np.array([x, y]) + T_CENTROID_PX * np.array([-np.sin(a), np.cos(a)])


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def pose_error(pose, goal=GOAL_POSE_PX) -> float:
    return float(np.hypot(*(_centroid(pose) - _centroid(goal))) + ANGLE_WEIGHT * abs(_wrap(pose[2] - goal[2])))


class PushPlanner:
    """``target(block_pose_px, tip_px) -> target_px`` once per control step."""

    def __init__(self, stroke: float = 24.0, clearance: float = 8.0):
        self.stroke, self.clearance = stroke, clearance
        self.plan = None  # (pre_point, direction, stroke_left)
        self.pushing = False

    def _candidates(self, pose):
        poly = t_polygon_px(*pose)
        coords = np.asarray(poly.exterior.coords)
        ccw = poly.exterior.is_ccw
        for p, q in zip(coords[:-1], coords[1:]):
            edge = q - p
            length = np.linalg.norm(edge)
            if length < 1e-6:
                continue
            t = edge / length
            n_out = np.array([t[1], -t[0]]) if ccw else np.array([-t[1], t[0]])
            for s in np.arange(6.0, length - 5.0, 8.0):
                yield p + t * s, n_out

    def _choose(self, pose, tip):
        c = _centroid(pose)
        goal_err = pose_error(pose)
        delta = self.stroke if goal_err > 40 else (self.stroke / 2 if goal_err > 15 else self.stroke / 5)
        best, best_cost = None, np.inf
        inflated = t_polygon_px(*pose).buffer(R_PUSHER + 2.0)
        for contact, n_out in self._candidates(pose):
            d = -n_out
            r = contact - c
            cross = r[0] * d[1] - r[1] * d[0]
            alpha = delta / (1 + cross ** 2 / GYRATION ** 2)
            new = (pose[0] + alpha * d[0] - 0, pose[1] + alpha * d[1], pose[2] + alpha * cross / GYRATION ** 2)
            # the origin moves with the centroid translation plus the rotation about the centroid
            ang = new[2] - pose[2]
            rel = np.array(pose[:2]) - c
            rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
            origin = c + alpha * d + rot @ rel
            new = (origin[0], origin[1], new[2])
            pre = contact + n_out * (R_PUSHER + self.clearance)
            if not (20 < pre[0] < 492 and 20 < pre[1] < 492) or inflated.contains(Point(pre)):
                continue
            cost = pose_error(new) + 0.02 * np.linalg.norm(pre - tip)
            if cost < best_cost:
                best, best_cost = (pre, d, delta + self.clearance), cost
        return best

    def target(self, block_pose_px, tip_px, settled: bool = True) -> np.ndarray:
        """Next pusher target. ``settled``: the arm has caught up with ``tip_px`` (the commanded point); plans
        are only made and pushes only started from a settled arm, so command latency does not cut strokes."""
        pose, tip = np.asarray(block_pose_px, float), np.asarray(tip_px, float)
        if self.plan is None:
            if not settled:
                return tip
            self.plan = self._choose(pose, tip)
            self.pushing = False
            if self.plan is None:
                return tip
        pre, d, left = self.plan
        if self.pushing:
            if left <= 0:
                self.plan = None
                return tip
            step = min(6.0, left)
            self.plan = (pre, d, left - step)
            return tip + d * step * 1.5  # lead the pusher a little so it keeps moving at the stroke speed
        if np.linalg.norm(tip - pre) < 3.0:
            if not settled:
                return pre
            self.pushing = True
            return tip + d * 4.0
        return self._approach(pose, tip, pre)

    @staticmethod
    def _approach(pose, tip, pre) -> np.ndarray:
        """Next waypoint of the shortest path from ``tip`` to ``pre`` around the block: Dijkstra on the
        visibility graph of the block's outline inflated by the pusher radius."""
        keep_out = t_polygon_px(*pose).buffer(R_PUSHER + 1.0, quad_segs=2)
        corners = np.asarray(t_polygon_px(*pose).buffer(R_PUSHER + 5.0, quad_segs=2).exterior.coords)[:-1]
        nodes = [tip, pre, *corners]

        def clear(a, b):
            return not keep_out.intersects(LineString([a, b])) or np.allclose(a, b)

        if clear(tip, pre):
            return pre
        n = len(nodes)
        dist = np.full(n, np.inf)
        prev = np.full(n, -1)
        dist[0] = 0.0
        done = np.zeros(n, bool)
        for _ in range(n):
            i = int(np.argmin(np.where(done, np.inf, dist)))
            if not np.isfinite(dist[i]) or i == 1:
                break
            done[i] = True
            for j in range(n):
                if not done[j] and clear(nodes[i], nodes[j]):
                    d = dist[i] + np.linalg.norm(nodes[i] - nodes[j])
                    if d < dist[j]:
                        dist[j], prev[j] = d, i
        if prev[1] < 0:  # no path (pre-contact point boxed in): back away from the block
            away = tip - _centroid(pose)
            return tip + 10.0 * away / max(np.linalg.norm(away), 1e-6)
        j = 1
        while prev[j] != 0:
            j = prev[j]
        return nodes[j]


class ScriptedOperator:
    """Teleop device driven by :class:`PushPlanner` on the twin's ground truth. Button 0 when the T covers the
    goal (``success_coverage``) or after ``max_s``.

    Like a person watching the cursor rather than the lagging arm, it steers a *pointer*: its own copy of the
    target the station integrates from the stick (target += axes * max_speed * control_dt, clipped to the
    square), and plans from the pointer; the arm follows the pointer ~2 control steps later."""

    def __init__(self, twin, max_speed: float, control_dt: float = 0.1, tau: float = 0.25,
                 success_coverage: float = SUCCESS_THRESHOLD, max_s: float = 90.0):
        from real_robot.teleop import TeleopState

        self._state_cls = TeleopState
        self.twin, self.max_speed, self.tau = twin, max_speed, tau
        self.success_coverage, self.max_s = success_coverage, max_s
        self.planner = PushPlanner()
        self.control_dt = control_dt
        self.pointer = None
        self.t0 = None

    def read(self):
        import time

        self.t0 = self.t0 or time.monotonic()
        truth = self.twin.truth()
        if truth["coverage"] >= self.success_coverage or time.monotonic() - self.t0 > self.max_s:
            return self._state_cls(buttons=(True, False))
        if self.pointer is None:
            self.pointer = table_to_px(truth["tcp_pose"][:2])
        settled = np.linalg.norm(table_to_px(truth["tcp_pose"][:2]) - self.pointer) < 3.0
        target = self.planner.target(truth["block_pose_px"], self.pointer, settled)
        vel = (target - self.pointer) * PX / self.tau  # m/s
        axes = np.zeros(6)
        axes[:2] = np.clip(vel / self.max_speed, -1, 1)
        self.pointer = np.clip(self.pointer + axes[:2] * self.max_speed * self.control_dt / PX, 0.0, 512.0)
        return self._state_cls(axes=axes)

    def close(self) -> None:
        pass
