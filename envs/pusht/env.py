"""PushT: push a T-shaped block onto a goal pose with a circular agent (pymunk >= 7, gymnasium API).

Physics, reset and reward follow the reference environment (real-stanford/diffusion_policy ``PushTEnv``) so
that a seed starts where the reference's seed starts and recorded actions replay the recorded trajectories:

- pymunk space with zero gravity and ``damping = 0``. In pymunk damping is the fraction of velocity a body
  keeps per second, so 0 means the block keeps none: it moves only while pushed (quasi-static pushing).
- static wall segments at 5 and 506 (radius 2); all shapes keep pymunk's default friction 0 and elasticity 0
  (the reference's ``body.friction = 1`` set an unused attribute on the bodies, not on their shapes).
- the agent is a kinematic circle (r = 15) whose velocity follows a PD law towards the action target,
  ``v += (k_p (target - p) - k_v v) dt`` with k_p = 100, k_v = 20, simulated at 100 Hz, 10 substeps per action.
- the T block: mass 1, moment 2x the bar's polygon moment (as the reference computed it), centre of gravity
  (0, 45) in its body frame.
- reset(seed=s) draws agent xy, block xy and angle from ``np.random.RandomState(s)`` exactly as the reference
  and sets the block's position *before* its angle (the reference's "legacy" order used for evaluation);
  ``reset(options={"reset_to_state": s5})`` places a recorded state, angle *before* position (the order the
  data was recorded with). Both run one 10 ms physics step afterwards, as the reference did.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pymunk
from gymnasium import spaces

from envs.pusht.geometry import (
    CENTER_OF_GRAVITY_LOCAL, GOAL_POSE, T_BOXES_LOCAL, block_keypoints, coverage, reward_from_coverage,
)
from envs.pusht.arena import AGENT_RADIUS, WALL_RADIUS, WALLS, WINDOW_SIZE
from envs.pusht.protocol import MAX_STEPS, OBS_TYPES, SUCCESS_THRESHOLD, canonical_obs_type, keypoint_obs
from envs.pusht.render import Renderer

SIM_HZ = 100
CONTROL_HZ = 10
N_SUBSTEPS = SIM_HZ // CONTROL_HZ
DT = 1.0 / SIM_HZ
K_P, K_V = 100.0, 20.0
# The full physics state saved by get_physics_state(): everything the next step depends on.
PHYSICS_STATE_FIELDS = (
    "agent_x", "agent_y", "agent_vx", "agent_vy",
    "block_x", "block_y", "block_angle", "block_vx", "block_vy", "block_angular_velocity",
    "target_x", "target_y",
)


class PushTEnv(gym.Env):
    """The PushT task.

    Args:
        obs_type: "state" -> (5,) [agent x, y, block x, y, block angle mod 2pi];
            "keypoints" (alias "lowdim") -> (20,) the 9 block keypoints (x, y) flattened, then agent x, y;
            "image" -> {"image": (image_size, image_size, 3) uint8, "agent_pos": (2,)}.
        render_mode: only "rgb_array"; ``render()`` returns a (render_size, render_size, 3) uint8 frame with the
            latest action target marked.
        image_size: side of the image observation (96 as in the dataset).
        render_size: side of ``render()`` frames; ``render_frame(size)`` gives any other size (videos use 512).
        max_episode_steps: the episode is truncated after this many steps (300, the evaluation protocol);
            None disables truncation.
        terminate_on_success: end the episode (terminated=True) once coverage > 0.95, as the reference's
            ``done``. The evaluation runner turns it off and keeps stepping until max_episode_steps, like the
            reference runner; the score (max reward) is the same either way.

    Actions are absolute agent targets (x, y) in pixels. Targets outside [0, 512] are clipped to it (the walls
    lie inside); NaN or inf raises ValueError.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, obs_type: str = "state", render_mode: str | None = "rgb_array", image_size: int = 96,
                 render_size: int = 96, max_episode_steps: int | None = MAX_STEPS, terminate_on_success: bool = True):
        try:
            obs_type = canonical_obs_type(obs_type)
        except ValueError as exc:
            raise ValueError(f"PushTEnv: {exc}") from None
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"PushTEnv: unknown render_mode {render_mode!r}; valid: 'rgb_array' or None")
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.image_size = int(image_size)
        self.render_size = int(render_size)
        self.max_episode_steps = max_episode_steps
        self.terminate_on_success = terminate_on_success

        ws = float(WINDOW_SIZE)
        self.action_space = spaces.Box(0.0, ws, shape=(2,), dtype=np.float64)
        if obs_type == "state":
            self.observation_space = spaces.Box(
                np.zeros(5), np.array([ws, ws, ws, ws, 2 * math.pi]), dtype=np.float64)
        elif obs_type == "keypoints":
            self.observation_space = spaces.Box(0.0, ws, shape=(20,), dtype=np.float64)
        else:
            self.observation_space = spaces.Dict({
                "image": spaces.Box(0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8),
                "agent_pos": spaces.Box(0.0, ws, shape=(2,), dtype=np.float64),
            })

        self._renderer: Renderer | None = None
        self.space: pymunk.Space | None = None
        self.latest_action: np.ndarray | None = None
        self._n_contact_points = 0
        self._n_steps = 0
        self._needs_reset = True
        self._last_coverage = 0.0

    # ------------------------------------------------------------------ physics
    def _build_space(self):
        """A fresh space: walls, agent, block, contact counter (added in the reference's order)."""
        space = pymunk.Space()
        space.gravity = (0.0, 0.0)
        space.damping = 0.0
        space.add(*[pymunk.Segment(space.static_body, a, b, WALL_RADIUS) for a, b in WALLS])

        agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        agent.position = (256.0, 400.0)
        space.add(agent, pymunk.Circle(agent, AGENT_RADIUS))

        bar, stem = (box.tolist() for box in T_BOXES_LOCAL)
        block = pymunk.Body(1.0, 2 * pymunk.moment_for_poly(1.0, bar))
        shapes = [pymunk.Poly(block, bar), pymunk.Poly(block, stem)]
        block.center_of_gravity = tuple(CENTER_OF_GRAVITY_LOCAL)
        block.position = (256.0, 300.0)
        block.angle = 0.0
        space.add(block, *shapes)

        space.on_collision(0, 0, post_solve=self._count_contacts)
        self.space, self.agent, self.block = space, agent, block

    def _count_contacts(self, arbiter, space, data):
        self._n_contact_points += len(arbiter.contact_point_set.points)

    def _place(self, state, angle_first: bool):
        agent_x, agent_y, block_x, block_y, angle = (float(v) for v in state)
        self.agent.position = (agent_x, agent_y)
        # pymunk rotates a body about its centre of gravity, which is 45 px from the T's origin, so the order of
        # setting position and angle changes where the origin ends up (see the module docstring).
        if angle_first:
            self.block.angle = angle
            self.block.position = (block_x, block_y)
        else:
            self.block.position = (block_x, block_y)
            self.block.angle = angle
        self.space.step(DT)

    def _simulate(self, target):
        tx, ty = target
        agent, space = self.agent, self.space
        self._n_contact_points = 0
        px, py = agent.position
        vx, vy = agent.velocity
        for _ in range(N_SUBSTEPS):
            # Same float operations, in the same order, as the reference's Vec2d expression.
            ax = K_P * (tx - px) + K_V * (0.0 - vx)
            ay = K_P * (ty - py) + K_V * (0.0 - vy)
            vx, vy = vx + ax * DT, vy + ay * DT
            agent.velocity = (vx, vy)
            space.step(DT)
            # A kinematic body moves by p + v*dt in chipmunk; mirroring it here (bit-identical, checked in
            # tests/test_pusht_env.py) saves reading the position back through pymunk every substep.
            px, py = px + vx * DT, py + vy * DT

    def get_physics_state(self) -> np.ndarray:
        """The full simulation state as a float64 vector (fields in PHYSICS_STATE_FIELDS).

        The target is the latest action (NaN before the first step). Restore it with set_physics_state.
        """
        self._check_started("get_physics_state")
        target = self.latest_action if self.latest_action is not None else (math.nan, math.nan)
        a, b = self.agent, self.block
        return np.array([*a.position, *a.velocity, *b.position, b.angle, *b.velocity, b.angular_velocity, *target],
                        dtype=np.float64)

    def set_physics_state(self, physics_state) -> None:
        """Restore a state from get_physics_state() into a fresh space (so a planner can clone the simulation).

        Restoring is exact for every saved quantity. pymunk's contact cache (warm-started impulses of bodies
        that were already touching) is not part of the state; it starts empty, as after a reset, so stepping a
        restored state while the agent touches the block can differ from the original run by ~1e-6 px in the
        first steps. The same saved state always gives the same future, whatever ran before.
        """
        s = np.asarray(physics_state, dtype=np.float64)
        if s.shape != (len(PHYSICS_STATE_FIELDS),):
            raise ValueError(f"set_physics_state: expected shape ({len(PHYSICS_STATE_FIELDS)},) with fields "
                             f"{PHYSICS_STATE_FIELDS}, got {s.shape}")
        self._build_space()
        self.agent.position = (s[0], s[1])
        self.agent.velocity = (s[2], s[3])
        self.block.angle = s[6]
        self.block.position = (s[4], s[5])
        self.block.velocity = (s[7], s[8])
        self.block.angular_velocity = s[9]
        self.latest_action = None if np.isnan(s[10:12]).any() else s[10:12].copy()
        self._n_contact_points = 0
        self._last_coverage = coverage(self.block_pose)
        self._needs_reset = False

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode: from seed ``seed`` as the reference does, or from ``options["reset_to_state"]``.

        ``options["reset_to_state"]``: 5 values [agent x, y, block x, y, block angle] as the dataset's ``state``
        array stores them (placed angle first). With no seed, a seed is drawn from the env's RNG (seeded by the
        last ``reset(seed=...)``), so a seeded sequence of resets is reproducible.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"reset_to_state"}
        if unknown:
            raise ValueError(f"PushTEnv.reset: unknown options {sorted(unknown)}; valid: ['reset_to_state']")
        self._build_space()
        self.latest_action = None
        self._n_steps = 0
        state = options.get("reset_to_state")
        if state is not None:
            state = np.asarray(state, dtype=np.float64)
            if state.shape != (5,) or not np.isfinite(state).all():
                raise ValueError("PushTEnv.reset: options['reset_to_state'] must be 5 finite numbers "
                                 f"[agent x, y, block x, y, block angle], got {state!r}")
            self._place(state, angle_first=True)
        else:
            if seed is None:
                seed = int(self.np_random.integers(0, 2**31 - 1))
            self._place(initial_state_for_seed(seed), angle_first=False)
        self._n_contact_points = 0
        self._last_coverage = coverage(self.block_pose)
        self._needs_reset = False
        return self._get_obs(), self._get_info()

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("PushTEnv.step: call reset() first (before the first step, and after an episode "
                               "ended with terminated or truncated)")
        target = np.array(action, dtype=np.float64).reshape(-1)
        if target.shape != (2,):
            raise ValueError(f"PushTEnv.step: action must be an (x, y) target, got shape {np.shape(action)}")
        if not np.isfinite(target).all():
            raise ValueError(f"PushTEnv.step: action {target} contains NaN or inf; actions are (x, y) pixel "
                             f"targets in [0, {WINDOW_SIZE}]")
        np.clip(target, 0.0, float(WINDOW_SIZE), out=target)
        self.latest_action = target
        self._simulate(target)
        self._n_steps += 1

        self._last_coverage = cov = coverage(self.block_pose)
        terminated = self.terminate_on_success and cov > SUCCESS_THRESHOLD
        truncated = self.max_episode_steps is not None and self._n_steps >= self.max_episode_steps
        self._needs_reset = terminated or truncated
        return self._get_obs(), reward_from_coverage(cov), terminated, truncated, self._get_info()

    def render(self) -> np.ndarray:
        """The current frame at render_size with the latest action target marked."""
        return self.render_frame(self.render_size, draw_action=True)

    def render_frame(self, size: int, draw_action: bool = True) -> np.ndarray:
        """The current frame as (size, size, 3) uint8 (the image observation is render_frame(96, False))."""
        self._check_started("render")
        if self._renderer is None:
            self._renderer = Renderer()
        action = self.latest_action if draw_action else None
        return self._renderer.render(self.agent.position, self.block_pose, size, action)

    # ------------------------------------------------------------------ observations
    @property
    def block_pose(self) -> tuple[float, float, float]:
        """(x, y, angle) of the T's origin; the angle is pymunk's, not wrapped."""
        x, y = self.block.position
        return x, y, self.block.angle

    @property
    def agent_pos(self) -> np.ndarray:
        return np.array(self.agent.position, dtype=np.float64)

    def block_keypoints(self) -> np.ndarray:
        """The 9 block keypoints (9, 2) in pixels, as the dataset's ``keypoint`` array stores them."""
        return block_keypoints(self.block_pose)

    def _state_vector(self) -> np.ndarray:
        """[agent x, y, block x, y, angle in [0, 2pi)]: the dataset's ``state`` convention."""
        x, y, angle = self.block_pose
        ax, ay = self.agent.position
        return np.array([ax, ay, x, y, angle % (2 * math.pi)], dtype=np.float64)

    def dataset_row(self, action) -> dict[str, np.ndarray]:
        """The current step in the reference dataset's layout, taken before ``action`` is executed.

        One definition for every recorder (teleop, scripted expert), so their buffers always agree:
        img (H, W, 3) uint8 without the target marker, state (5,), keypoint (9, 2), action (2,), and
        n_contacts (1,) of the step that led to this observation; all float32 but img.
        """
        self._check_started("dataset_row")
        return {
            "img": self.render_frame(self.image_size, draw_action=False),
            "state": self._state_vector().astype(np.float32),
            "keypoint": self.block_keypoints().astype(np.float32),
            "action": np.asarray(action, dtype=np.float32),
            "n_contacts": np.array([self._get_info()["n_contacts"]], dtype=np.float32),
        }

    def _get_obs(self):
        if self.obs_type == "state":
            return self._state_vector()
        if self.obs_type == "keypoints":
            return keypoint_obs(self.block_keypoints(), self.agent_pos, dtype=np.float64)
        if self._renderer is None:
            self._renderer = Renderer()
        return image_observation(self._renderer, self.agent.position, self.block_pose, self.image_size)

    def _get_info(self) -> dict:
        cov = self._last_coverage
        return {
            "coverage": cov,
            "is_success": cov > SUCCESS_THRESHOLD,
            "block_pose": np.array(self.block_pose, dtype=np.float64),
            "agent_pos": self.agent_pos,
            "agent_vel": np.array(self.agent.velocity, dtype=np.float64),
            "goal_pose": GOAL_POSE.copy(),
            # contact points summed over the substeps / substeps, rounded up (the reference's definition)
            "n_contacts": int(math.ceil(self._n_contact_points / N_SUBSTEPS)),
        }

    def _check_started(self, what: str):
        if self.space is None:
            raise RuntimeError(f"PushTEnv.{what}: call reset() first")

    def close(self):
        self._renderer = None
        self.space = None


def image_observation(renderer: Renderer, agent_pos, block_pose, size: int = 96) -> dict:
    """The image observation for a state: {"image": (size, size, 3) uint8 without action marker, "agent_pos"}."""
    return {"image": renderer.render(agent_pos, block_pose, size), "agent_pos": np.array(agent_pos, dtype=np.float64)}


def initial_state_for_seed(seed: int) -> np.ndarray:
    """The reference's start for ``seed``: legacy RandomState draws in the order agent xy, block xy, angle."""
    rs = np.random.RandomState(seed=seed)
    return np.array([
        rs.randint(50, 450), rs.randint(50, 450),
        rs.randint(100, 400), rs.randint(100, 400),
        rs.randn() * 2 * np.pi - np.pi,
    ], dtype=np.float64)
