"""What ur_rtde's uploaded control program (``rtde_control.script``) does on a UR controller, emulated.

ur_rtde's RTDEControlInterface never moves the arm itself: it uploads a URScript program, then writes a command
code to ``input_int_register_0`` and its arguments to ``input_double_register_0..`` and waits on
``output_int_register_0`` (1 = ready for a command, 2 = done with it). The twin cannot run URScript, so this
class is the program's main loop in Python, called once per controller period with the input registers.
Register protocol (command codes from ur_rtde 1.6's ``RTDE::RobotCommand::Type``):

    realtime commands (servoJ 11, servoL 24, speedJ 9, speedL 10, ...): process, then signal ready
    cmd 0: idle, signal ready
    any other command: process once (motions run until finished), then signal done; the client clears the
    register (cmd 0) and the program signals ready again
    255: stop the program

Commands the station cannot honour (force mode, freedrive, contact detection, ...) are refused with a text
message and the program stops (as a real controller's script does on a runtime error), so a client never
believes they happened.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

log = logging.getLogger(__name__)

READY, DONE = 1, 2
MOVEJ, MOVEJ_IK, MOVEL, MOVEL_FK = 1, 2, 3, 4
SPEEDJ, SPEEDL, SERVOJ, SERVOL = 9, 10, 11, 24
SPEED_STOP, SERVO_STOP, STOPL, STOPJ = 15, 16, 33, 34
SET_PAYLOAD, ZERO_FT, SET_TCP, SET_SPEED_SLIDER, SET_WATCHDOG = 17, 8, 29, 22, 35
GET_FK_DEFAULT, GET_FK_ARGS, GET_IK_DEFAULT, IS_STEADY = 43, 44, 46, 47
STOP_SCRIPT = 255
REALTIME = {SERVOL, SERVOJ, SPEEDJ, SPEEDL, 6, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71}
NO_EFFECT = {SET_PAYLOAD, ZERO_FT, SET_SPEED_SLIDER, SET_WATCHDOG, 20, 21, 59}  # accepted, nothing to simulate
MAX_JOINT_SPEED = np.pi  # rad/s, UR5e joint limit (180 deg/s)


class Motion:
    """A finite move (moveJ / moveL) sampled per control period; linear in joints or in Cartesian space with a
    trapezoidal speed profile (speed v, acceleration a), like the controller's planner without blending."""

    def __init__(self, start, goal, v: float, a: float, cartesian: bool):
        self.cartesian = cartesian
        self.start, self.goal = np.asarray(start, float), np.asarray(goal, float)
        if cartesian:
            dist = np.linalg.norm(self.goal[:3] - self.start[:3])
            rots = Rotation.from_rotvec([self.start[3:], self.goal[3:]])
            self._slerp = Slerp([0.0, 1.0], rots)
            dist = max(dist, (rots[0].inv() * rots[1]).magnitude() * 0.1)  # pure rotations: ~0.1 m per rad
        else:
            dist = np.abs(self.goal - self.start).max()
        v, a = max(v, 1e-3), max(a, 1e-3)
        t_acc = v / a
        if dist < v * t_acc:  # triangle profile
            t_acc = np.sqrt(dist / a)
            v = a * t_acc
        self.v, self.a, self.t_acc, self.dist = v, a, t_acc, dist
        self.duration = 0.0 if dist == 0 else 2 * t_acc + (dist - v * t_acc) / v

    def fraction(self, t: float) -> float:
        if t >= self.duration or self.dist == 0:
            return 1.0
        if t < self.t_acc:
            s = 0.5 * self.a * t * t
        elif t < self.duration - self.t_acc:
            s = 0.5 * self.a * self.t_acc ** 2 + self.v * (t - self.t_acc)
        else:
            s = self.dist - 0.5 * self.a * (self.duration - t) ** 2
        return float(np.clip(s / self.dist, 0.0, 1.0))

    def sample(self, t: float) -> np.ndarray:
        f = self.fraction(t)
        if not self.cartesian:
            return self.start + f * (self.goal - self.start)
        pos = self.start[:3] + f * (self.goal[:3] - self.start[:3])
        return np.concatenate([pos, self._slerp(f).as_rotvec()])


class ControlProgram:
    """One run of the uploaded program. ``sim`` provides ``q``, ``qd``, ``tcp_pose(q)``,
    ``inverse_kinematics(pose, q_seed)`` and ``set_joint_target(q)``."""

    def __init__(self, sim, dt: float, register_offset: int = 0):
        self.sim, self.dt, self.off = sim, dt, register_offset
        self.running = True
        self.executing = False
        self.output_int = {0: READY, 1: 0, 2: 0}
        self.output_double = {i: 0.0 for i in range(6)}
        self.servo_q = None  # joint target of servoJ/servoL, held until servoStop
        self.speed = None  # (kind, vector, acceleration) of speedJ/speedL
        self.motion: Motion | None = None
        self.motion_async = False
        self.motion_t = 0.0
        self.q_cmd = np.array(sim.q)
        self.messages: list[str] = []

    # -- register helpers ------------------------------------------------------------------------------------
    def _f(self, regs, i):
        return float(regs.get(f"input_double_register_{i + self.off}", 0.0))

    def _i(self, regs, i):
        return int(regs.get(f"input_int_register_{i + self.off}", 0))

    def _vec(self, regs, start, n=6):
        return np.array([self._f(regs, start + k) for k in range(n)])

    def registers_out(self) -> dict:
        out = {f"output_int_register_{k + self.off}": v for k, v in self.output_int.items()}
        out.update({f"output_double_register_{k + self.off}": v for k, v in self.output_double.items()})
        return out

    def _fail(self, why: str) -> None:
        """A runtime error in the program: the controller stops it (runtime_state leaves PLAYING)."""
        self.messages.append(why)
        log.error("control program stopped: %s", why)
        self.running = False
        self.servo_q = None
        self.motion = None

    def _ik(self, pose):
        return self.sim.inverse_kinematics(pose, q_seed=self.q_cmd)

    # -- one controller period ---------------------------------------------------------------------------------
    def tick(self, regs: dict) -> None:
        if not self.running:
            return
        cmd = self._i(regs, 0)
        try:
            if cmd in REALTIME:
                self._process(cmd, regs)
                self.output_int[0] = READY
            elif cmd == 0:
                self.executing = False
                if self.motion is None or self.motion_async:
                    self.output_int[0] = READY
            elif not self.executing:
                self.executing = True
                self._process(cmd, regs)
        except Exception as e:  # noqa: BLE001 - any failure is a script runtime error on a real controller
            self._fail(f"command {cmd}: {e}")
        self._advance()

    def _process(self, cmd: int, regs: dict) -> None:
        if cmd == SERVOL:
            self.speed, self.motion = None, None
            self.servo_q = self._ik(self._vec(regs, 0))
        elif cmd == SERVOJ:
            self.speed, self.motion = None, None
            self.servo_q = self._vec(regs, 0)
        elif cmd in (SPEEDJ, SPEEDL):
            self.servo_q, self.motion = None, None
            self.speed = ("j" if cmd == SPEEDJ else "l", self._vec(regs, 0), self._f(regs, 6))
        elif cmd in (MOVEJ, MOVEJ_IK, MOVEL, MOVEL_FK):
            self.servo_q, self.speed = None, None
            v, a, is_async = self._f(regs, 6), self._f(regs, 7), self._i(regs, 1)
            target = self._vec(regs, 0)
            if cmd in (MOVEJ, MOVEJ_IK):
                goal = target if cmd == MOVEJ else self._ik(target)
                self.motion = Motion(self.q_cmd, goal, v, a, cartesian=False)
            else:
                goal = target if cmd == MOVEL else self.sim.tcp_pose(target)
                self._ik(goal)  # unreachable goals fail now, as the controller's planner does
                self.motion = Motion(self.sim.tcp_pose(self.q_cmd), goal, v, a, cartesian=True)
            self.motion_t = 0.0
            self.motion_async = bool(is_async)
            if is_async:  # the script runs async moves in a thread and reports done at once
                self.output_int[0] = DONE
        elif cmd in (SERVO_STOP, SPEED_STOP, STOPL, STOPJ):
            self.servo_q, self.speed, self.motion = None, None, None
            self.q_cmd = np.array(self.sim.q)
            self.output_int[0] = DONE
        elif cmd == GET_FK_DEFAULT:
            self._set_out_doubles(self.sim.tcp_pose(self.sim.q))
        elif cmd == GET_FK_ARGS:
            self._set_out_doubles(self.sim.tcp_pose(self._vec(regs, 0)))
        elif cmd == GET_IK_DEFAULT:
            self._set_out_doubles(self._ik(self._vec(regs, 0)))
        elif cmd == IS_STEADY:
            self.output_int[1] = int(np.abs(self.sim.qd).max() < 1e-3)
        elif cmd == STOP_SCRIPT:
            self.running = False
            self.servo_q, self.speed, self.motion = None, None, None
            return
        elif cmd in NO_EFFECT:
            pass
        else:
            raise NotImplementedError(f"the twin does not simulate ur_rtde command {cmd}")
        if self.motion is None and cmd not in REALTIME:
            self.output_int[0] = DONE

    def _set_out_doubles(self, values) -> None:
        for k, v in enumerate(values):
            self.output_double[k] = float(v)

    def _advance(self) -> None:
        """Move the joint command one period toward the active target, capped at the joint speed limit."""
        if self.motion is not None:
            self.motion_t += self.dt
            sample = self.motion.sample(self.motion_t)
            target = self._ik(sample) if self.motion.cartesian else sample
            if self.motion_t >= self.motion.duration:
                self.motion = None
                if not self.motion_async:
                    self.output_int[0] = DONE
        elif self.servo_q is not None:
            target = self.servo_q
        elif self.speed is not None:
            kind, vec, _ = self.speed
            if kind == "j":
                target = self.q_cmd + vec * self.dt
            else:
                pose = self.sim.tcp_pose(self.q_cmd)
                pose[:3] += vec[:3] * self.dt
                pose[3:] = (Rotation.from_rotvec(vec[3:] * self.dt) * Rotation.from_rotvec(pose[3:])).as_rotvec()
                target = self._ik(pose)
        else:
            return
        step = np.clip(np.asarray(target) - self.q_cmd, -MAX_JOINT_SPEED * self.dt, MAX_JOINT_SPEED * self.dt)
        self.q_cmd = self.q_cmd + step
        self.sim.set_joint_target(self.q_cmd)
