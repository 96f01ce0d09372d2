"""Physics of the simulated UR5e Push-T station: stepping, joint servo, kinematics, T-block state, rendering.

The arm is driven like a UR controller drives it: a joint target per control period (what ``servoj`` receives
after the controller's inverse kinematics), tracked by stiff position actuators with gravity compensated, so the
pusher really shoves the block through contacts. Everything here is plain MuJoCo; the network servers that make
the station look like a UR controller live in ``real_robot/twin``.
"""

from __future__ import annotations

import numpy as np
import mujoco
from scipy.spatial.transform import Rotation
from shapely.geometry import Point as _Point, Polygon

from envs.pusht.geometry import T_OUTLINE_LOCAL, to_world
from envs.pusht.geometry import coverage as pusht_coverage

from envs.ur5e_pusht.model import (BLOCK_HEIGHT, HOME_Q_SEED, JOINT_NAMES, PUSH_Z, TOOL_DOWN_ROTVEC,
                                   WORKSPACE_CENTER, build_mjcf, px_to_table, table_to_px)

HOME_POSE = np.array([*WORKSPACE_CENTER, PUSH_Z + 0.05, *TOOL_DOWN_ROTVEC])


class IKError(RuntimeError):
    """The requested TCP pose has no joint solution near the current configuration."""


def t_polygon_px(x: float, y: float, angle: float) -> Polygon:
    """Push-T's T outline at pose (x, y, angle) in pixel units (the 2D task's own geometry)."""
    return Polygon(to_world(T_OUTLINE_LOCAL, (x, y, angle)))


class UR5ePushTSim:
    """One UR5e Push-T station. Not thread safe: the owner serialises calls (the twin's stepping loop)."""

    def __init__(self, timestep: float = 0.002, render_size: tuple[int, int] = (96, 96)):
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(timestep=timestep))
        self.data = mujoco.MjData(self.model)
        self.timestep = timestep
        self._qadr = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._dadr = np.array([self.model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._tcp = self.model.site("tcp").id
        self._block_q = self.model.joint("block").qposadr[0]
        self._render_size = render_size
        self._renderer = None
        self._scratch = mujoco.MjData(self.model)  # for IK/FK without touching the live state
        self.home_q = self.inverse_kinematics(HOME_POSE, q_seed=HOME_Q_SEED)
        self.reset(seed=None)

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = 0, block_pose_px=None, q=None) -> None:
        """Arm to ``q`` (default: home, pusher 5 cm above the workspace centre); block at ``block_pose_px`` or,
        with a seed, at a random pose drawn like Push-T's reset."""
        mujoco.mj_resetData(self.model, self.data)
        q = self.home_q if q is None else q
        self.data.qpos[self._qadr] = q
        self.data.ctrl[:] = q
        if block_pose_px is None:
            rs = np.random.RandomState(seed if seed is not None else 0)
            block_pose_px = (rs.randint(150, 360), rs.randint(150, 360), rs.randn() * 2 * np.pi - np.pi)
        self.set_block_pose_px(*block_pose_px)
        mujoco.mj_forward(self.model, self.data)

    def reset_block(self, seed: int) -> None:
        """Block to a seeded random pose (arm untouched): the twin's stand-in for a person resetting the scene.
        Retries poses that would overlap the pusher."""
        rs = np.random.RandomState(seed)
        tip = table_to_px(self.tcp_pose()[:2])
        for _ in range(100):
            pose = (rs.randint(150, 360), rs.randint(150, 360), rs.randn() * 2 * np.pi - np.pi)
            if not t_polygon_px(*pose).buffer(20).contains(_Point(tip)):
                break
        self.set_block_pose_px(*pose)
        mujoco.mj_forward(self.model, self.data)

    def set_block_pose_px(self, x: float, y: float, angle: float) -> None:
        xy = px_to_table((x, y))
        a = self._block_q
        self.data.qpos[a:a + 3] = (xy[0], xy[1], 0.0005)
        self.data.qpos[a + 3:a + 7] = (np.cos(angle / 2), 0, 0, np.sin(angle / 2))
        self.data.qvel[self.model.joint("block").dofadr[0]:][:6] = 0

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    @property
    def qd(self) -> np.ndarray:
        return self.data.qvel[self._dadr].copy()

    @property
    def q_target(self) -> np.ndarray:
        return self.data.ctrl.copy()

    def tcp_pose(self, q=None) -> np.ndarray:
        """TCP (pusher tip) as UR's [x, y, z, rx, ry, rz] (rotation vector), of the live state or of ``q``."""
        d = self.data
        if q is not None:
            d = self._scratch
            d.qpos[self._qadr] = q
            mujoco.mj_kinematics(self.model, d)
        pos = d.site_xpos[self._tcp].copy()
        rotvec = Rotation.from_matrix(d.site_xmat[self._tcp].reshape(3, 3)).as_rotvec()
        return np.concatenate([pos, rotvec])

    def tcp_speed(self) -> np.ndarray:
        """[vx, vy, vz, wx, wy, wz] of the TCP in the base frame."""
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self._tcp, vel, 0)
        return np.concatenate([vel[3:], vel[:3]])

    def block_pose_px(self) -> np.ndarray:
        """Block (x px, y px, angle) in Push-T's convention."""
        a = self._block_q
        x, y = table_to_px(self.data.qpos[a:a + 2])
        w, _, _, z = self.data.qpos[a + 3:a + 7]
        return np.array([x, y, 2 * np.arctan2(z, w)])

    def coverage(self) -> float:
        """Push-T's score: area(goal ∩ block) / area(goal)."""
        return float(pusht_coverage(self.block_pose_px()))

    def block_lifted(self) -> bool:
        """True if the block left the table (the pusher drove it over): a failed episode."""
        return bool(self.data.qpos[self._block_q + 2] > BLOCK_HEIGHT)

    # ------------------------------------------------------------------ control
    def set_joint_target(self, q) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint target must be 6 finite numbers, got {q!r}")
        self.data.ctrl[:] = q

    def step(self, n: int = 1) -> None:
        mujoco.mj_step(self.model, self.data, nstep=n)

    def inverse_kinematics(self, pose, q_seed=None, tol: float = 1e-5, max_iter: int = 50) -> np.ndarray:
        """Joint angles putting the TCP at ``pose`` ([x,y,z,rx,ry,rz]), nearest to ``q_seed`` (default: current).

        Damped least squares on MuJoCo's site Jacobian. Why not a closed-form UR IK: the controller's
        ``get_inverse_kin`` also picks the solution nearest the current joints, which is exactly what a local
        iterative solver converges to for the small steps of servoing; no IK package is in our stack.
        """
        pose = np.asarray(pose, dtype=np.float64)
        target_pos, target_rot = pose[:3], Rotation.from_rotvec(pose[3:]).as_matrix()
        d = self._scratch
        q = np.array(self.q if q_seed is None else q_seed, dtype=np.float64)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(max_iter):
            d.qpos[self._qadr] = q
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            err_p = target_pos - d.site_xpos[self._tcp]
            cur_rot = d.site_xmat[self._tcp].reshape(3, 3)
            err_r = Rotation.from_matrix(target_rot @ cur_rot.T).as_rotvec()
            err = np.concatenate([err_p, err_r])
            if np.linalg.norm(err) < tol:
                return q
            mujoco.mj_jacSite(self.model, d, jacp, jacr, self._tcp)
            jac = np.vstack([jacp[:, self._dadr], jacr[:, self._dadr]])
            lam = 1e-4
            dq = jac.T @ np.linalg.solve(jac @ jac.T + lam * np.eye(6), err)
            q = q + dq
        raise IKError(f"no IK solution for TCP pose {np.round(pose, 4).tolist()} (residual {np.linalg.norm(err):.2e})")

    # ------------------------------------------------------------------ rendering
    def capture_scene(self, camera: str = "front") -> None:
        """Snapshot the current state into the renderer's scene (cheap; needs the state to be still)."""
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self._render_size)
        self._renderer.update_scene(self.data, camera)

    def render_scene(self) -> np.ndarray:
        """Rasterise the last captured scene: RGB uint8 (H, W, 3). Touches no simulation state, so a stepping
        thread may run meanwhile. Needs MUJOCO_GL=egl or osmesa without a display."""
        return self._renderer.render()

    def render(self, camera: str = "front") -> np.ndarray:
        self.capture_scene(camera)
        return self.render_scene()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
