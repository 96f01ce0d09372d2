"""MJCF of a UR5e Push-T station, generated from the published UR5e DH parameters.

Why generate instead of shipping meshes: the only UR5e MJCF at hand (robosuite's) pins mujoco <= 3.8, and the
twin needs kinematics that match what a real UR controller reports, not looks. Each body frame below *is* the DH
frame of the previous joint, so MuJoCo's forward kinematics equal UR's (``actual_TCP_pose`` in the base frame).

Standard DH (Universal Robots' published table for the e-series UR5e):
    T_i = Rz(theta_i) Tz(d_i) Tx(a_i) Rx(alpha_i)
so link ``i`` is a body rotating about its local z, and link ``i+1`` sits at ``(a_i, 0, d_i)`` turned by
``Rx(alpha_i)``.  Geometry is capsules along those offsets (visual only: the arm never collides); the pusher
(a cylinder on the flange) and the T block collide with each other, the block with the table.

Scene, in the robot base frame (metres): table top at z = 0, a square Push-T workspace of side
``WORKSPACE_SIZE`` centred at ``WORKSPACE_CENTER`` (1 Push-T pixel = WORKSPACE_SIZE / 512 m), a T block of the
Push-T proportions (bar 120x30 px over a 30x90 px stem), a translucent goal T drawn on the table and the cameras
of ``CAMERAS`` looking at the workspace: ``front`` from across the table, ``side`` from its right-hand side.
"""

from __future__ import annotations

import numpy as np

from envs.pusht.geometry import GOAL_POSE

# UR5e DH parameters (Universal Robots, "DH parameters for calculations of kinematics and dynamics").
DH_D = (0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996)
DH_A = (0.0, -0.425, -0.3922, 0.0, 0.0, 0.0)
DH_ALPHA = (np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0)

JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3")
PUSHER_LENGTH = 0.15  # flange -> pusher tip along tool z; the twin reports the tip as the TCP
PUSHER_RADIUS = 0.012
WORKSPACE_CENTER = (0.0, -0.42)
WORKSPACE_SIZE = 0.40  # metres across the 512 px Push-T square
PX = WORKSPACE_SIZE / 512.0
BLOCK_HEIGHT = 0.03
GOAL_POSE_PX = tuple(GOAL_POSE)  # Push-T's goal (x px, y px, angle)
T_CENTROID_PX = (120 * 30 * 15 + 30 * 90 * 75) / (120 * 30 + 30 * 90)  # 40.7 px along the stem from the origin
# Camera name -> position; each looks at the workspace centre. ``front`` faces the arm from across the table (like
# the reference station's front camera), so the wrist above the pusher does not hide the T; ``side`` looks from the
# table's +x edge, so it sees across the image what is depth for ``front`` (base-frame y).
CAMERAS = {"front": (0.0, -0.92, 0.48), "side": (0.52, -0.42, 0.46)}
# Seed configuration (elbow up, wrist down) and the TCP pose the station starts in: pusher tip 1.5 cm above the
# table at the workspace centre, tool z pointing down.
HOME_Q_SEED = (np.pi / 2, -1.9, 1.9, -1.57, -1.5708, 0.0)
PUSH_Z = 0.015
TOOL_DOWN_ROTVEC = (np.pi, 0.0, 0.0)


def _quat_rx(angle: float) -> str:
    return f"{np.cos(angle / 2):.9f} {np.sin(angle / 2):.9f} 0 0"


def _arm_xml() -> str:
    """Nested bodies link1..link6 plus the flange/pusher, DH frame by DH frame."""
    colours = ("0.3 0.5 0.8 1", "0.7 0.7 0.7 1")
    xml, close = "", ""
    for i in range(6):
        a, d, alpha = DH_A[i], DH_D[i], DH_ALPHA[i]
        rgba = colours[i % 2]
        # A capsule from the joint to the next frame, plus a short one along the joint axis (the motor housing).
        link_geom = ""
        if abs(a) > 1e-9 or abs(d) > 1e-9:
            link_geom = (f'<geom type="capsule" fromto="0 0 0 {a} 0 {d}" size="0.045" rgba="{rgba}" '
                         f'contype="0" conaffinity="0"/>')
        xml += (
            f'<body name="link{i + 1}" gravcomp="1">'
            f'<inertial pos="0 0 0" mass="{2.0 if i < 3 else 1.0}" diaginertia="0.01 0.01 0.01"/>'
            f'<joint name="{JOINT_NAMES[i]}" axis="0 0 1" range="-6.2832 6.2832" damping="2" armature="0.1"/>'
            f'<geom type="cylinder" fromto="0 0 -0.06 0 0 0.06" size="0.05" rgba="0.2 0.2 0.2 1" '
            f'contype="0" conaffinity="0"/>'
            f'{link_geom}'
            f'<body name="frame{i + 1}" pos="{a} 0 {d}" quat="{_quat_rx(alpha)}">'
        )
        close += "</body></body>"
    # Flange frame = DH frame 6. The pusher rides along tool z; its tip is the TCP site.
    xml += (
        '<geom type="cylinder" fromto="0 0 0 0 0 0.03" size="0.04" rgba="0.2 0.2 0.2 1" contype="0" conaffinity="0"/>'
        f'<body name="pusher" pos="0 0 {PUSHER_LENGTH / 2}">'
        '<inertial pos="0 0 0" mass="0.2" diaginertia="0.001 0.001 0.001"/>'
        f'<geom name="pusher" type="cylinder" size="{PUSHER_RADIUS} {PUSHER_LENGTH / 2}" rgba="0.2 0.2 0.9 1" '
        'contype="1" conaffinity="1" friction="0.5 0.005 0.0001"/>'
        '</body>'
        f'<site name="tcp" pos="0 0 {PUSHER_LENGTH}" size="0.005"/>'
    )
    return xml + close


def _t_geoms(prefix: str, rgba: str, collide: bool, height: float) -> str:
    """The Push-T 'T' in its body frame: bar 120x30 px, stem 30x90 px below it, origin at the bar's outer edge
    middle (Push-T's convention), so block (x, y, angle) maps one to one onto Push-T's state."""
    bits = 'contype="3" conaffinity="3"' if collide else 'contype="0" conaffinity="0"'
    hz = height / 2
    return (
        f'<geom name="{prefix}_bar" type="box" pos="0 {15 * PX} {hz}" size="{60 * PX} {15 * PX} {hz}" '
        f'rgba="{rgba}" {bits} friction="0.6 0.005 0.0001"/>'
        f'<geom name="{prefix}_stem" type="box" pos="0 {75 * PX} {hz}" size="{15 * PX} {45 * PX} {hz}" '
        f'rgba="{rgba}" {bits} friction="0.6 0.005 0.0001"/>'
    )


def px_to_table(xy_px) -> np.ndarray:
    """Push-T pixel coordinates -> base-frame table xy (metres). Push-T's y axis points 'down' the image; here it
    maps to +y of the workspace so the T's handedness is preserved in the overhead camera."""
    xy_px = np.asarray(xy_px, dtype=np.float64)
    origin = np.array(WORKSPACE_CENTER) - WORKSPACE_SIZE / 2
    return origin + xy_px * PX


def table_to_px(xy) -> np.ndarray:
    origin = np.array(WORKSPACE_CENTER) - WORKSPACE_SIZE / 2
    return (np.asarray(xy, dtype=np.float64) - origin) / PX


def _look_at(pos, target) -> tuple[str, str]:
    """MJCF ``pos`` and ``xyaxes`` of a camera at ``pos`` looking at ``target`` with world z up in the image."""
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)  # camera y; camera z = -forward, so x cross y = z holds
    fmt = lambda v: " ".join(f"{x:.6f}" for x in v)  # noqa: E731
    return fmt(pos), fmt(np.concatenate([right, up]))


def build_mjcf(timestep: float = 0.002, camera_fovy: float = 42.0) -> str:
    """The whole station as an MJCF string (timestep = one controller period: 0.002 s for e-series)."""
    cx, cy = WORKSPACE_CENTER
    goal_xy = px_to_table(GOAL_POSE_PX[:2])
    cameras = ""
    for name, pos in CAMERAS.items():
        cam_pos, cam_xyaxes = _look_at(pos, (cx, cy, 0.0))
        cameras += f'<camera name="{name}" pos="{cam_pos}" xyaxes="{cam_xyaxes}" fovy="{camera_fovy}"/>'
    return f"""
<mujoco model="ur5e_pusht">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" gravity="0 0 -9.81" integrator="implicitfast" cone="elliptic"/>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="0"/></visual>
  <worldbody>
    <light pos="{cx} {cy} 2.0" dir="0 0 -1" directional="true" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="box" pos="{cx} {cy} -0.02" size="0.6 0.6 0.02" rgba="0.55 0.45 0.35 1"
          contype="2" conaffinity="2" friction="0.4 0.005 0.0001"/>
    <geom name="workspace" type="box" pos="{cx} {cy} 0.0001" size="{WORKSPACE_SIZE / 2} {WORKSPACE_SIZE / 2} 0.0001"
          rgba="1 1 1 1" contype="0" conaffinity="0"/>
    <body name="goal" pos="{goal_xy[0]} {goal_xy[1]} 0.0003" euler="0 0 {GOAL_POSE_PX[2]}">
      {_t_geoms("goal", "0.4 0.9 0.4 0.6", collide=False, height=0.0002)}
    </body>
    <body name="block" pos="{cx} {cy} 0.001">
      <freejoint name="block"/>
      <inertial pos="0 {T_CENTROID_PX * PX} {BLOCK_HEIGHT / 2}" mass="0.1" diaginertia="0.0002 0.0002 0.0003"/>
      {_t_geoms("block", "0.47 0.53 0.6 1", collide=True, height=BLOCK_HEIGHT)}
    </body>
    {cameras}
    <body name="base" pos="0 0 0">
      <geom type="cylinder" fromto="0 0 0 0 0 0.09" size="0.075" rgba="0.2 0.2 0.2 1" contype="0" conaffinity="0"/>
      {_arm_xml()}
    </body>
  </worldbody>
  <actuator>
    {"".join(f'<position name="{n}" joint="{n}" kp="40000" kv="500" forcerange="-1000 1000"/>' for n in JOINT_NAMES)}
  </actuator>
</mujoco>
"""
