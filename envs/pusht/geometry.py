"""Geometry of the PushT task: the T block's shape, the goal pose, keypoints and coverage.

Everything here is pure numpy/shapely on a pose ``(x, y, angle)`` of the T body's origin, so the physics
(env.py), rendering (render.py) and any planner share one definition of the block.

Facts from the reference environment (real-stanford/diffusion_policy, ``PushTEnv``):
- the T is two boxes in its body frame (scale 30): a bar 120 x 30 with y in [0, 30] and a stem 30 x 90 with
  y in [30, 120]; the body origin is the middle of the bar's outer edge and the centre of gravity is the mean
  of the two boxes' centres, (0, 45);
- the goal pose is (256, 256, pi/4); coverage = area(goal T ∩ block T) / area(goal T).
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from envs.pusht.protocol import SUCCESS_THRESHOLD

SCALE = 30.0
BAR_LENGTH = 4 * SCALE  # 120: the bar's width; the stem is 3 * SCALE long (from y=30 to y=120)
# The two convex boxes of the T in the body frame, counter-clockwise in pymunk's y-down screen frame, in the
# same vertex order as the reference (it matters only for rendering, which draws outlines vertex by vertex).
T_BOXES_LOCAL = (
    np.array([[-BAR_LENGTH / 2, SCALE], [BAR_LENGTH / 2, SCALE], [BAR_LENGTH / 2, 0.0], [-BAR_LENGTH / 2, 0.0]]),
    np.array([[-SCALE / 2, SCALE], [-SCALE / 2, BAR_LENGTH], [SCALE / 2, BAR_LENGTH], [SCALE / 2, SCALE]]),
)
# The T's outline as one simple polygon (8 vertices). Used for coverage: the union of the two boxes, so its
# intersection area equals the reference's (it intersected a MultiPolygon of the two boxes, whose shared edge
# makes that MultiPolygon invalid in shapely's eyes; one valid polygon is both exact and faster).
T_OUTLINE_LOCAL = np.array([
    [-BAR_LENGTH / 2, 0.0], [BAR_LENGTH / 2, 0.0], [BAR_LENGTH / 2, SCALE], [SCALE / 2, SCALE],
    [SCALE / 2, BAR_LENGTH], [-SCALE / 2, BAR_LENGTH], [-SCALE / 2, SCALE], [-BAR_LENGTH / 2, SCALE],
])
CENTER_OF_GRAVITY_LOCAL = (T_BOXES_LOCAL[0].mean(0) + T_BOXES_LOCAL[1].mean(0)) / 2  # (0, 45)
# Radius around the centre of gravity that contains the whole T (~76.5 px, to a stem end corner): two T's whose
# centres of gravity are farther apart than twice this cannot overlap.
T_RADIUS = float(np.linalg.norm(T_OUTLINE_LOCAL - CENTER_OF_GRAVITY_LOCAL, axis=1).max())

GOAL_POSE = np.array([256.0, 256.0, math.pi / 4])

# The 9 block keypoints in the body frame. The reference sampled them once (farthest-point sampling on a
# rendered T plus a random sub-pixel shift) and stored their world coordinates in the dataset; these values are
# recovered from the dataset (pusht_cchi_v7_replay.zarr) by rotating every frame's keypoints back into the
# block frame and averaging the frames that agree to 1e-3 px (77% of all 25,650; median residual 1.5e-5 px).
# tests/test_pusht_env.py checks them against the dataset when it is present.
KEYPOINTS_LOCAL = np.array([
    [9.2697871, 90.0409737],
    [-60.9834717, -1.1867296],
    [60.912756, -1.3933643],
    [-0.2705031, 25.5436251],
    [-14.0649269, 122.8158536],
    [39.0027386, 32.8574041],
    [-39.9664141, 32.7296556],
    [-16.8243439, 62.8631791],
    [23.5414615, -1.700288],
])


def to_world(points_local: np.ndarray, pose) -> np.ndarray:
    """Map (K, 2) body-frame points to world coordinates for a body whose origin is at ``pose = (x, y, angle)``.

    pose: (3,) -> (K, 2), or a batch (N, 3) -> (N, K, 2).
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim == 1:  # the per-step case: scalar trig is several times cheaper than array ops on 3 numbers
        c, s = math.cos(pose[2]), math.sin(pose[2])
        return points_local @ np.array(((c, s), (-s, c))) + pose[:2]
    c, s = np.cos(pose[..., 2]), np.sin(pose[..., 2])
    rot_t = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)  # (..., 2, 2): R transposed
    return points_local @ rot_t + pose[..., None, :2]


def block_keypoints(pose) -> np.ndarray:
    """The 9 block keypoints (9, 2) (or (N, 9, 2) for poses (N, 3)), as the dataset's ``keypoint`` stores them."""
    return to_world(KEYPOINTS_LOCAL, pose)


_GOAL_POLYGON = shapely.Polygon(to_world(T_OUTLINE_LOCAL, GOAL_POSE))
shapely.prepare(_GOAL_POLYGON)
_GOAL_AREA = _GOAL_POLYGON.area  # 120*30 + 30*90 = 6300
_GOAL_COG = to_world(CENTER_OF_GRAVITY_LOCAL[None], GOAL_POSE)[0]


def coverage(block_pose) -> float:
    """Fraction of the goal T covered by the block T, exactly (shapely polygon intersection).

    Fast path: when the two T's bounding circles do not meet the coverage is exactly 0 and shapely is skipped.
    """
    x, y, angle = (float(v) for v in block_pose)
    cog_dy = CENTER_OF_GRAVITY_LOCAL[1]  # the centre of gravity is (0, 45): rotated, (-45 sin, 45 cos)
    if math.hypot(x - cog_dy * math.sin(angle) - _GOAL_COG[0], y + cog_dy * math.cos(angle) - _GOAL_COG[1]) \
            > 2 * T_RADIUS:
        return 0.0
    outline = shapely.polygons(to_world(T_OUTLINE_LOCAL, (x, y, angle)))
    return float(shapely.area(shapely.intersection(_GOAL_POLYGON, outline)) / _GOAL_AREA)


def reward_from_coverage(cov: float) -> float:
    """The reference's reward: coverage scaled so that the success threshold reaches 1, clipped to [0, 1]."""
    return float(min(max(cov / SUCCESS_THRESHOLD, 0.0), 1.0))
