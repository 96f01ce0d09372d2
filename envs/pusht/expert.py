"""A scripted PushT expert: a pushing planner that uses a clone of the simulator to choose its pushes.

Why a planner and not a learned policy: it needs no data, so it supplies the demonstrations that the default
pipeline trains on when no human data is present, and it is reproducible (same seed, same episode).

How it plays, like a person with a mouse, in *primitives* of two parts:
1. approach: move around the block (never through it) to a point just outside the T's outline;
2. push: move straight into the block at a steady speed, then stop.
Targets are absolute xy at 10 Hz, evenly spaced along each path, so the demonstrations are smooth and
consistent: a policy that sees two observations can imitate them.

Which primitive: candidate contacts spaced every ``contact_spacing`` px along the T's outline, each with three
push directions (set up once, in the block frame). Every candidate is *screened* in the cloned simulator: the
agent is placed at rest 1 px from its contact and pushes on (the approach cannot move the block, so it is
skipped here), and the best point to stop is kept. The best few are then *verified* by simulating exactly what
would be executed from the true state, approach included. The winner makes the most progress per control step
(cost reduction / steps, counting the approach), so a long detour is taken only when it pays, and a big push
beats a timid one. A verified primitive that reaches success is cut at the success step and beats all others.
The simulation is deterministic, so what the verification saw is what happens.

The cost: far from the goal, log of the pose error (centre-of-gravity distance, with ``angle_weight`` px per
radian of angle error); within ``fine_error`` of it, log(1 - coverage), the quantity success is defined by. There
pushes get slow (down to 1 px per step) and short, which gives the ~1 px / ~1 degree precision that
coverage > 0.95 needs. When no candidate improves (rare), the least bad one that costs at most ``max_setback``
is taken; failing that, the agent backs away from the block and plans again.

Uses only the env's published API: ``get_physics_state`` / ``set_physics_state`` to clone, ``step`` to roll out.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import shapely

from envs.pusht.env import PushTEnv
from envs.pusht.geometry import CENTER_OF_GRAVITY_LOCAL, GOAL_POSE, T_OUTLINE_LOCAL, coverage, to_world
from envs.pusht.arena import AGENT_RADIUS
from envs.pusht.protocol import MAX_STEPS

# Agent centres the planner may use: inside the walls (inner faces at 7 and 504) by the agent radius + 3 px.
ARENA_LOW, ARENA_HIGH = 25.0, 486.0
_T_POLYGON_LOCAL = shapely.Polygon(T_OUTLINE_LOCAL)
_GOAL_COG = to_world(CENTER_OF_GRAVITY_LOCAL[None], GOAL_POSE)[0]


@dataclass(frozen=True)
class ExpertConfig:
    """Tuning of the planner (distances in px, speeds in px per 0.1 s control step)."""

    approach_speed: float = 18.0  # moving around the block
    push_speed: float = 10.0  # pushing, far from the goal
    fine_push_speed: float = 1.0  # slowest push, near the goal
    max_push: float = 90.0  # longest push screened, far from the goal
    fine_error: float = 12.0  # pose error below which pushes get short and slow
    clearance: float = 5.0  # gap between agent and block where a push starts
    route_clearance: float = 12.0  # gap kept while going around the block (the agent cuts corners: PD lag)
    contact_spacing: float = 10.0  # spacing of candidate contact points along the outline
    push_angles_deg: tuple = (-35.0, 0.0, 35.0)  # push directions relative to the edge's inward normal
    angle_weight: float = 100.0  # px of pose error per radian of angle error
    top_k: int = 6  # screened candidates verified with the full simulation (more if none of them improves)
    max_verified: int = 24  # ... at most this many
    max_setback: float = 0.5  # when no push improves, accept one that worsens the cost by at most this (log)
    screen_patience: int = 4  # screening stops a push after this many steps without a new best
    hold_steps: int = 2  # steps the target rests at the end of a push, so the agent stops


def pose_error(pose) -> float:
    """Distance of a block pose (x, y, angle) from the goal, in px: sqrt(d_cog^2 + (angle_weight * d_angle)^2)."""
    return _pose_error(pose, ExpertConfig.angle_weight)


def _pose_error(pose, angle_weight: float) -> float:
    cog = to_world(CENTER_OF_GRAVITY_LOCAL[None], np.asarray(pose[:3], dtype=np.float64))[0]
    d_angle = (pose[2] - GOAL_POSE[2] + math.pi) % (2 * math.pi) - math.pi
    return math.sqrt(float(np.sum((cog - _GOAL_COG) ** 2)) + (angle_weight * d_angle) ** 2)


def _candidate_pushes(config: ExpertConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block-frame push starts (N, 2), unit outward normals at the contact (N, 2), unit push directions (N, 2).

    Contacts are spaced along each edge of the T's outline; the start lies on the edge's outward normal, one
    agent radius + clearance + 1 px out, and is dropped when that spot is too close to another part of the T
    (e.g. under the bar next to the stem).
    """
    stand_off = AGENT_RADIUS + config.clearance + 1.0
    starts, normals, dirs = [], [], []
    n = len(T_OUTLINE_LOCAL)
    for i in range(n):
        a, b = T_OUTLINE_LOCAL[i], T_OUTLINE_LOCAL[(i + 1) % n]
        edge = b - a
        length = float(np.linalg.norm(edge))
        normal = np.array([edge[1], -edge[0]]) / length
        if _T_POLYGON_LOCAL.contains(shapely.Point(*((a + b) / 2 + normal))):
            normal = -normal  # make it point out of the T
        n_points = max(1, int(length // config.contact_spacing))
        for j in range(n_points):
            start = a + edge * (j + 0.5) / n_points + normal * stand_off
            if _T_POLYGON_LOCAL.distance(shapely.Point(*start)) < stand_off - 0.5:
                continue
            for angle in config.push_angles_deg:
                starts.append(start)
                normals.append(normal)
                dirs.append(_rotation(math.radians(angle)) @ -normal)
    return np.array(starts), np.array(normals), np.array(dirs)


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _resample(route: list[np.ndarray], spacing: float) -> list[np.ndarray]:
    """Points every ``spacing`` px along a polyline, ending exactly at its last point."""
    out, carry = [], 0.0
    for p, q in zip(route[:-1], route[1:]):
        seg = q - p
        length = float(np.linalg.norm(seg))
        if length < 1e-9:
            continue
        s = spacing - carry
        while s <= length:
            out.append(p + seg * (s / length))
            s += spacing
        carry = length - (s - spacing)
    if not out or np.linalg.norm(out[-1] - route[-1]) > 1e-6:
        out.append(np.array(route[-1], dtype=np.float64))
    return out


class PushTExpert:
    """The scripted expert. ``act(env)`` returns the next absolute xy target for a running ``PushTEnv``.

    It keeps its own planning copy of the simulation (a second PushTEnv) and a queue of planned targets; a new
    primitive is planned whenever the queue runs empty. Call ``reset()`` at the start of every episode.
    """

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()
        self._starts_local, self._normals_local, self._dirs_local = _candidate_pushes(self.config)
        self._sim = PushTEnv(obs_type="state", render_mode=None, max_episode_steps=None,
                             terminate_on_success=False)
        self._queue: deque = deque()
        self.n_plans = 0

    def reset(self) -> None:
        self._queue.clear()
        self.n_plans = 0

    def act(self, env: PushTEnv) -> np.ndarray:
        """The next target (2,) for ``env`` (a PushTEnv, or a gymnasium wrapper around one)."""
        if not self._queue:
            self._queue.extend(self.plan(env.unwrapped.get_physics_state()))
        return np.array(self._queue.popleft(), dtype=np.float64)

    # ------------------------------------------------------------------ planning
    def _cost(self, pose, cov: float, fine: bool) -> float:
        """What a plan minimises: log pose error far from the goal, log(1 - coverage) near it."""
        if fine:
            return math.log(max(1.0 - cov, 0.0) + 1e-3)
        return math.log(_pose_error(pose, self.config.angle_weight) + 1e-3)

    def plan(self, state: np.ndarray) -> list[np.ndarray]:
        """Targets of the best primitive from physics state ``state`` (PushTEnv.get_physics_state())."""
        cfg = self.config
        self.n_plans += 1
        pose, agent = state[4:7], state[0:2]
        e0 = _pose_error(pose, cfg.angle_weight)
        fine = e0 < cfg.fine_error
        cost0 = self._cost(pose, coverage(pose), fine)
        if fine:  # slow, short pushes: the block moves about as far as the agent pushes into it
            speed = float(np.clip(e0 / 4, cfg.fine_push_speed, cfg.push_speed))
            n_push = int(math.ceil(3 * e0 / speed)) + 2
        else:
            speed, n_push = cfg.push_speed, int(math.ceil(cfg.max_push / cfg.push_speed)) + 2
        rot = _rotation(float(pose[2]))
        starts = self._starts_local @ rot.T + pose[:2]
        contacts = starts - (self._normals_local @ rot.T) * cfg.clearance  # 1 px from the T
        dirs = self._dirs_local @ rot.T

        screened = []
        for i in np.flatnonzero(np.all((starts > ARENA_LOW) & (starts < ARENA_HIGH), axis=1)):
            push = [contacts[i] + dirs[i] * (speed * j) for j in range(1, n_push + 1)]
            cost, k = self._screen(state, contacts[i], push, fine)
            if cost < cost0 - 1e-3:
                n_steps = np.linalg.norm(starts[i] - agent) / cfg.approach_speed + 2 + k + cfg.hold_steps
                screened.append(((cost - cost0) / n_steps, i, push[:k]))
        screened.sort(key=lambda c: c[0])

        # Verify the best screened candidates in order; stop at the first batch that contains an improvement.
        best, fallback = None, None  # (score, targets)
        for batch_start in range(0, min(len(screened), cfg.max_verified), cfg.top_k):
            for _, i, push in screened[batch_start: batch_start + cfg.top_k]:
                approach = self._approach(pose, agent, starts[i])
                close_gap = [starts[i] + (contacts[i] - starts[i]) * f for f in (0.6, 1.0)]
                targets = [np.clip(t, ARENA_LOW, ARENA_HIGH)
                           for t in approach + close_gap + push + [push[-1]] * cfg.hold_steps]
                cost, n_steps, moved = self._verify(state, targets, fine)
                plan = ((cost - cost0) / n_steps, targets[:n_steps])  # progress per step
                if cost < cost0 - 1e-3 and (best is None or plan[0] < best[0]):
                    best = plan
                if moved and cost < cost0 + cfg.max_setback and (fallback is None or plan[0] < fallback[0]):
                    fallback = plan
            if best is not None:
                break
        chosen = best or fallback
        if chosen is None:  # nothing helps from here (rare): back away from the block and look again
            away = _route_around(pose, agent, agent, AGENT_RADIUS + 2 * cfg.route_clearance)[1:2] or [agent]
            return [np.clip(away[0], ARENA_LOW, ARENA_HIGH)]
        return chosen[1]

    def _screen(self, state, contact, targets, fine) -> tuple[float, int]:
        """Push along ``targets`` with the agent placed at rest at ``contact``: (lowest cost, push steps to take).

        Far cheaper than simulating the approach: the block does not move before the agent touches it.
        """
        cfg = self.config
        s = state.copy()
        s[0:2] = s[10:12] = contact
        s[2:4] = 0.0
        sim = self._sim
        sim.set_physics_state(s)
        best_cost, best_j = math.inf, 0
        for j, target in enumerate(targets, start=1):
            _, _, _, _, info = sim.step(np.clip(target, ARENA_LOW, ARENA_HIGH))
            cost = self._cost(sim.block_pose, info["coverage"], fine)
            if cost < best_cost:
                best_cost, best_j = cost, j
            elif j - best_j >= cfg.screen_patience:
                break  # this push has been making things worse: pushing on is very unlikely to help
        # The agent trails a moving target by ~2 control steps (PD gains), so stop the target 2 steps before the
        # best point: the agent then comes to rest about where it was at that point.
        return best_cost, max(1, best_j - 2)

    def _verify(self, state, targets, fine) -> tuple[float, int, bool]:
        """Simulate ``targets`` from ``state``: (cost, number of targets to execute, whether the block moved).

        Success cuts the plan at the success step and beats everything else; the fewer steps the better.
        """
        sim = self._sim
        sim.set_physics_state(state)
        for n, target in enumerate(targets, start=1):
            _, _, _, _, info = sim.step(target)
            if info["is_success"]:
                return -1e9, n, True
        moved = np.abs(np.asarray(sim.block_pose) - state[4:7]).max() > 0.1
        return self._cost(sim.block_pose, info["coverage"], fine), len(targets), moved

    def _approach(self, pose, agent, goal) -> list[np.ndarray]:
        """Targets that take the agent from ``agent`` to ``goal`` around the T, slowing down at the end."""
        cfg = self.config
        route = _route_around(pose, np.asarray(agent, dtype=np.float64), np.asarray(goal, dtype=np.float64),
                              AGENT_RADIUS + cfg.route_clearance, AGENT_RADIUS + cfg.clearance)
        targets = _resample(route, cfg.approach_speed)
        if len(targets) >= 2:  # ease in over the last leg so the agent arrives nearly at rest
            a, b = targets[-2], targets[-1]
            targets = targets[:-1] + [a + (b - a) * f for f in (0.5, 0.8, 1.0)]
        return targets


def _route_around(pose, start: np.ndarray, goal: np.ndarray, radius: float, goal_radius: float | None = None
                  ) -> list[np.ndarray]:
    """Shortest polyline from start to goal that keeps ``radius`` away from the T at ``pose``.

    A visibility graph over the corners of the T's outline grown by ``radius`` (mitred, so it keeps 8 corners)
    and Dijkstra: with 10 nodes this is cheaper than any grid planner and exact. The last leg, into ``goal``,
    only has to keep ``goal_radius`` (<= radius) away: the goal is a push start, just outside the T. If ``start``
    is closer than ``radius`` (the agent just pushed the T) the route first backs straight away from the T.
    """
    t_world = shapely.Polygon(to_world(T_OUTLINE_LOCAL, np.asarray(pose[:3], dtype=np.float64)))
    keep_out = t_world.buffer(radius - 1.0, join_style="mitre")
    keep_out_goal = t_world.buffer((goal_radius or radius) - 1.0, join_style="mitre")
    corners = np.array(t_world.buffer(radius + 1.0, join_style="mitre").exterior.coords[:-1])
    route = [start]
    if t_world.exterior.distance(shapely.Point(*start)) < radius - 1.0 or t_world.contains(shapely.Point(*start)):
        nearest = np.array(t_world.exterior.interpolate(t_world.exterior.project(shapely.Point(*start))).coords[0])
        away = start - nearest
        if t_world.contains(shapely.Point(*start)) or np.linalg.norm(away) < 1e-6:
            away = start - np.array(t_world.centroid.coords[0])
        start = nearest + away / max(float(np.linalg.norm(away)), 1e-9) * (radius + 1.0)
        route.append(start)
    nodes = [start, *corners, goal]
    n = len(nodes)
    dist, prev = [math.inf] * n, [-1] * n
    dist[0] = 0.0
    heap = [(0.0, 0)]
    while heap:
        d_u, u = heapq.heappop(heap)
        if u == n - 1:
            break
        if d_u > dist[u]:
            continue
        for v in range(1, n):
            w = d_u + float(np.linalg.norm(nodes[v] - nodes[u]))
            obstacle = keep_out_goal if v == n - 1 else keep_out
            if v != u and w < dist[v] and not obstacle.intersects(shapely.LineString([nodes[u], nodes[v]])):
                dist[v], prev[v] = w, u
                heapq.heappush(heap, (w, v))
    if prev[n - 1] == -1:  # goal unreachable in the graph (should not happen): go straight
        return route + [goal]
    path, u = [], n - 1
    while u > 0:
        path.append(nodes[u])
        u = prev[u]
    return route + path[::-1]


def demonstrate(seed: int, expert: PushTExpert | None = None, max_steps: int = MAX_STEPS, record: bool = True,
                image_size: int = 96) -> tuple[dict[str, np.ndarray] | None, dict]:
    """Run the expert on the episode of ``seed``; return (episode, stats).

    episode (None when ``record`` is False) holds the dataset's keys, one row per step, ``state[t]`` being the
    observation before ``action[t]``: img (T, 96, 96, 3) uint8 (no target marker), state (T, 5) float32 with the
    angle in [0, 2pi), keypoint (T, 9, 2) float32, action (T, 2) float32, n_contacts (T, 1) float32 (of the step
    that led to the observation, as the teleop recorder stores it). It ends at the first step whose coverage
    exceeds 0.95, or after ``max_steps``.
    stats: seed, success, n_steps, max_coverage, n_plans.
    """
    expert = expert or PushTExpert()
    expert.reset()
    env = PushTEnv(obs_type="state", render_mode=None, image_size=image_size, max_episode_steps=max_steps,
                   terminate_on_success=True)
    _, info = env.reset(seed=seed)
    rows: list[dict[str, np.ndarray]] = []
    max_cov, n_steps, done = info["coverage"], 0, False
    while not done:
        # Execute the float32 value that is stored, so the recorded actions replay the recorded states exactly.
        action = expert.act(env).astype(np.float32)
        if record:
            rows.append(env.dataset_row(action))
        _, _, terminated, truncated, info = env.step(action.astype(np.float64))
        n_steps += 1
        max_cov = max(max_cov, info["coverage"])
        done = terminated or truncated
    stats = {"seed": int(seed), "success": bool(info["is_success"]), "n_steps": n_steps,
             "max_coverage": float(max_cov), "n_plans": expert.n_plans}
    episode = {k: np.stack([r[k] for r in rows]) for k in rows[0]} if record else None
    return episode, stats
