"""Real-robot runtime pieces in isolation: trajectory interpolation, shared-memory ring, safety checks, the RTDE
wire format and the emulated control program (on the real MuJoCo station)."""

import multiprocessing as mp
import struct
import time
import uuid

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from real_robot.cameras import CameraStalled, RingCamera, color_spec
from real_robot.interpolator import PoseTrajectory
from real_robot.safety import UnsafeCommand, Workspace
from real_robot.shm_ring import SharedRing
from real_robot.twin import rtde_wire as W

DOWN = (np.pi, 0.0, 0.0)


def pose(x, y, z=0.05, rot=DOWN):
    return np.array([x, y, z, *rot])


# -- interpolator -----------------------------------------------------------------------------------------------
def test_trajectory_linear_position_slerp_rotation_and_hold_outside():
    r0, r1 = Rotation.from_rotvec([0, 0, 0]), Rotation.from_rotvec([0, 0, 1.0])
    traj = PoseTrajectory([0.0, 1.0], [[0, 0, 0, *r0.as_rotvec()], [1, 2, 3, *r1.as_rotvec()]])
    mid = traj(0.5)
    np.testing.assert_allclose(mid[:3], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(mid[3:], [0, 0, 0.5], atol=1e-12)  # slerp halfway
    np.testing.assert_allclose(traj(-5.0), traj(0.0))
    np.testing.assert_allclose(traj(9.0)[:3], [1, 2, 3])
    assert traj(np.array([0.0, 0.5, 1.0])).shape == (3, 6)


def test_schedule_waypoint_respects_speed_cap_and_replaces_later_knots():
    traj = PoseTrajectory([0.0], [pose(0, 0)])
    traj = traj.schedule_waypoint(pose(0.1, 0), time=0.1, now=0.0, max_pos_speed=0.25, max_rot_speed=1.0)
    assert traj.end_time == pytest.approx(0.4)  # 0.1 m at 0.25 m/s cannot arrive at 0.1 s
    traj2 = traj.schedule_waypoint(pose(0.0, 0.05), time=0.3, now=0.2, max_pos_speed=10, max_rot_speed=10)
    assert traj2.start_time == 0.2 and traj2.end_time == pytest.approx(0.3)
    assert not np.any(np.isclose(traj2.times, 0.4))  # the old plan (0.4 s knot) was superseded
    traj3 = traj.schedule_waypoint(pose(0.2, 0), time=0.5, now=0.2, max_pos_speed=10, max_rot_speed=10)
    np.testing.assert_allclose(traj3.times, [0.2, 0.4, 0.5])  # after the plan: appended
    np.testing.assert_allclose(traj2(0.2), traj(0.2))  # continuous at the splice


def test_stale_waypoint_never_enters_trajectory_and_hold_truncates():
    traj = PoseTrajectory([0.0, 1.0], [pose(0, 0), pose(0.1, 0)])
    with pytest.raises(ValueError, match="stale"):
        traj.schedule_waypoint(pose(0.2, 0), time=0.5, now=0.5, max_pos_speed=1, max_rot_speed=1)
    held = traj.hold(0.5)
    np.testing.assert_allclose(held(2.0), traj(0.5))


def test_trajectory_rejects_nonfinite_poses():
    with pytest.raises(ValueError, match="finite"):
        PoseTrajectory([0.0], [[np.nan, 0, 0, 0, 0, 0]])


# -- shared-memory ring -----------------------------------------------------------------------------------------
SPEC = {"x": ((3,), np.float64), "img": ((4, 4, 3), np.uint8)}


def _writer(name, n):
    ring = SharedRing.attach(name, SPEC, 8, child_of_owner=True)
    for i in range(n):
        ring.put(float(i), x=[i, i, i], img=np.full((4, 4, 3), i % 256, np.uint8))
    ring.close()


def test_ring_orders_records_wraps_and_crosses_processes():
    ring = SharedRing.create(f"robodiff_test_{uuid.uuid4().hex[:8]}", SPEC, capacity=8)
    try:
        with pytest.raises(LookupError, match="empty"):
            ring.last(1)
        p = mp.get_context("spawn").Process(target=_writer, args=(ring.name, 21))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert ring.count == 21
        out = ring.last(5)
        np.testing.assert_array_equal(out["timestamp"], [16, 17, 18, 19, 20])  # newest 5, oldest first
        np.testing.assert_array_equal(out["x"][:, 0], out["timestamp"])
        assert (out["img"][-1] == 20).all()
        assert len(ring.last(100)["timestamp"]) == 7  # never more than capacity - 1 (the slot being written)
    finally:
        ring.close()


def test_ring_attach_with_mismatched_spec_fails_clearly():
    ring = SharedRing.create(f"robodiff_test_{uuid.uuid4().hex[:8]}", SPEC, capacity=2)
    try:
        with pytest.raises(ValueError, match="disagree"):
            SharedRing.attach(ring.name, {"x": ((1000,), np.float64)}, 2)
    finally:
        ring.close()
    with pytest.raises(FileNotFoundError, match="producer"):
        SharedRing.attach(ring.name, SPEC, 2)


def test_camera_without_a_frame_yet_or_with_an_old_one_reports_a_stall():
    """A camera still starting up, or one whose producer stopped, raises CameraStalled (the runner then pauses
    the policy and holds the arm) rather than an unrelated error that would end the run."""
    ring = SharedRing.create(f"robodiff_test_{uuid.uuid4().hex[:8]}", color_spec((4, 4)), capacity=8)
    try:
        cam = RingCamera(ring.name, (4, 4), capacity=8, stall_timeout=0.2)
        with pytest.raises(CameraStalled, match="not produced a frame"):
            cam.get(1)
        with pytest.raises(CameraStalled, match="no frame"):
            cam.wait_first_frame(timeout=0.05)
        ring.put(time.time(), color=np.zeros((4, 4, 3), np.uint8), step=0)
        assert cam.get(1)["color"].shape == (1, 4, 4, 3)
        time.sleep(0.3)
        with pytest.raises(CameraStalled, match="old"):
            cam.get(1)
        cam.close()
    finally:
        ring.close()


def test_station_phase_lock_returns_when_a_new_frame_lands_and_times_out_without_one():
    """Station.wait_for_frame (the deploy loop's phase lock) blocks until each camera delivers a frame newer
    than those it held, and gives up after its timeout when no frame comes."""
    import threading

    from real_robot.station import PushTStation

    rings = [SharedRing.create(f"robodiff_test_{uuid.uuid4().hex[:8]}", color_spec((4, 4)), capacity=8)
             for _ in range(2)]
    frame = np.zeros((4, 4, 3), np.uint8)
    try:
        cams = {f"cam{i}": RingCamera(r.name, (4, 4), capacity=8) for i, r in enumerate(rings)}
        station = PushTStation(arm=None, cameras=cams)
        for r in rings:
            r.put(time.time(), color=frame, step=0)
        assert not station.wait_for_frame(timeout=0.05)  # nothing new arrived
        waiting = threading.Event()
        result = {}

        def waiter():
            waiting.set()
            result["fresh"] = station.wait_for_frame(timeout=10.0)

        t = threading.Thread(target=waiter)
        t.start()
        assert waiting.wait(5)
        rings[0].put(time.time(), color=frame, step=1)
        assert "fresh" not in result or not result["fresh"]  # one camera is not enough
        rings[1].put(time.time(), color=frame, step=1)
        t.join(10)
        assert result["fresh"] is True
        for cam in cams.values():
            cam.close()
    finally:
        for r in rings:
            r.close()


# -- safety -----------------------------------------------------------------------------------------------------
def test_workspace_clips_and_counts_and_rejects_nan():
    ws = Workspace((-0.2, -0.6, 0.01), (0.2, -0.2, 0.3))
    np.testing.assert_allclose(ws.check_pose(pose(0.5, -0.9, 0.0))[:3], [0.2, -0.6, 0.01])
    assert ws.n_clipped == 1
    np.testing.assert_allclose(ws.check_pose(pose(0.0, -0.4)), pose(0.0, -0.4))
    assert ws.n_clipped == 1
    with pytest.raises(UnsafeCommand, match="non-finite"):
        ws.check_pose(pose(np.nan, -0.4))
    with pytest.raises(UnsafeCommand, match="shape"):
        ws.check_pose([0.0, 0.0])
    with pytest.raises(ValueError, match="below"):
        Workspace((0, 0, 0), (0, 1, 1))


# -- RTDE wire format -------------------------------------------------------------------------------------------
def test_rtde_types_and_packing_roundtrip():
    assert W.output_type("actual_TCP_pose") == "VECTOR6D"
    assert W.output_type("runtime_state") == "UINT32"
    assert W.output_type("output_int_register_2") == "INT32"
    assert W.output_type("input_double_register_7") == "DOUBLE"  # inputs are readable as outputs
    assert W.output_type("no_such_thing") == "NOT_FOUND"
    assert W.input_type("output_int_register_0") == "NOT_FOUND"  # outputs cannot be written
    assert W.input_type("input_int_register_48") == "NOT_FOUND"
    types = ["INT32", "VECTOR6D", "UINT64", "BOOL"]
    values = [-3, [0.5] * 6, 2**40, True]
    fmt = W.recipe_struct(types)
    assert fmt.size == 4 + 48 + 8 + 1
    assert W.unflatten(fmt.unpack(fmt.pack(*W.flatten(values, types))), types) == values
    assert W.pack(W.START) == struct.pack(">HB", 3, ord("S"))


# -- emulated control program on the real simulated station -----------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    from envs.ur5e_pusht import UR5ePushTSim

    return UR5ePushTSim()


def _regs(cmd, values=(), ints=()):
    regs = {"input_int_register_0": cmd}
    regs.update({f"input_double_register_{i}": v for i, v in enumerate(values)})
    regs.update({f"input_int_register_{i + 1}": v for i, v in enumerate(ints)})
    return regs


def test_control_program_register_protocol(sim):
    from real_robot.twin import control_program as cp

    sim.reset(seed=0)
    prog = cp.ControlProgram(sim, sim.timestep)
    assert prog.output_int[0] == cp.READY
    start = sim.tcp_pose()
    goal = start + np.array([0.03, 0, 0, 0, 0, 0])
    prog.tick(_regs(cp.MOVEL, [*goal, 0.25, 1.0], ints=[0]))  # blocking moveL
    assert prog.output_int[0] == cp.READY  # still moving: not done yet
    for _ in range(1000):
        prog.tick(_regs(cp.MOVEL, [*goal, 0.25, 1.0], ints=[0]))  # client keeps the register until done
        sim.step()
        if prog.output_int[0] == cp.DONE:
            break
    assert prog.output_int[0] == cp.DONE
    sim.step(200)
    np.testing.assert_allclose(sim.tcp_pose()[:3], goal[:3], atol=2e-3)
    prog.tick(_regs(0))
    assert prog.output_int[0] == cp.READY  # cleared -> ready for the next command
    # servoL is realtime: processed and ready in the same period
    target = goal + np.array([0, 0.01, 0, 0, 0, 0])
    prog.tick(_regs(cp.SERVOL, [*target, 0.5, 0.5, 0.002, 0.1, 300]))
    assert prog.output_int[0] == cp.READY
    np.testing.assert_allclose(sim.tcp_pose(prog.servo_q)[:3], target[:3], atol=1e-4)
    prog.tick(_regs(cp.STOP_SCRIPT))
    assert not prog.running


def test_control_program_caps_joint_speed_and_fails_unreachable(sim):
    from real_robot.twin import control_program as cp

    sim.reset(seed=0)
    prog = cp.ControlProgram(sim, sim.timestep)
    q0 = prog.q_cmd.copy()
    prog.tick(_regs(cp.SERVOJ, [*(q0 + 1.0), 0, 0, 0.002, 0.1, 300]))  # 1 rad jump requested
    assert np.abs(prog.q_cmd - q0).max() <= cp.MAX_JOINT_SPEED * sim.timestep + 1e-12
    prog.tick(_regs(cp.MOVEL, [5.0, 5.0, 5.0, *DOWN, 0.25, 1.0], ints=[0]))  # 7 m away: no IK solution
    assert not prog.running and "no IK solution" in prog.messages[-1]


def test_spacemouse_without_spacenavd_fails_with_the_fix():
    import ctypes.util

    from real_robot.teleop import SpaceMouse

    if ctypes.util.find_library("spnav") is not None:
        pytest.skip("libspnav is installed here; the missing-library path cannot be exercised")
    with pytest.raises(OSError, match="apt-get install spacenavd"):
        SpaceMouse()


def test_scripted_teleop_plays_segments_then_presses_the_button():
    from real_robot.teleop import ScriptedTeleop

    t = ScriptedTeleop([(0.05, [1, 0, 0, 0, 0, 0]), (0.05, [0, -1, 0, 0, 0, 0])])
    assert t.read().axes[0] == 1 and not t.read().buttons[0]
    import time

    time.sleep(0.06)
    assert t.read().axes[1] == -1
    time.sleep(0.06)
    s = t.read()
    assert s.buttons[0] and not s.axes.any()


# -- Push-T bridge and the scripted operator ------------------------------------------------------------------
def test_pusht_bridge_maps_station_units_to_pusht_pixels():
    from envs.pusht.geometry import block_keypoints
    from envs.ur5e_pusht import px_to_table
    from real_robot.twin.pusht_bridge import PushTPixelPolicy, pusht_obs, to_pusht_episode

    block = np.array([[300.0, 200.0, 0.3], [310.0, 205.0, 0.35]])
    obs = {"agent_pos": px_to_table([[100.0, 50.0], [110.0, 60.0]]), "block_pose_px": block}
    px = pusht_obs(obs)
    np.testing.assert_allclose(px["agent_pos"], [[100, 50], [110, 60]], atol=1e-3)
    assert px["keypoint"].shape == (2, 20)
    np.testing.assert_allclose(px["keypoint"][1, :18].reshape(9, 2), block_keypoints(block[1]), atol=1e-3)
    policy = PushTPixelPolicy(lambda o: {"action": np.full((1, 8, 2), 256.0)})
    np.testing.assert_allclose(policy(obs)["action"][0, 0], px_to_table([256.0, 256.0]))
    ep = to_pusht_episode({"agent_pos": obs["agent_pos"], "action": obs["agent_pos"], "block_pose_px": block})
    assert ep["state"].shape == (2, 5) and ep["keypoint"].shape == (2, 9, 2) and ep["action"].shape == (2, 2)
    with pytest.raises(KeyError, match="BlockTracker"):
        to_pusht_episode({"agent_pos": obs["agent_pos"], "action": obs["agent_pos"]})


def test_scripted_operator_pushes_the_t_onto_the_goal(sim):
    """The expert planner in the loop with the physics (no network): reaches Push-T success."""
    from envs.ur5e_pusht import table_to_px
    from real_robot.twin.operator import PushPlanner

    sim.reset(seed=None)
    sim.reset_block(7)
    expert, xy = PushPlanner(), sim.tcp_pose()[:2].copy()
    for _ in range(400):
        tip = table_to_px(sim.tcp_pose()[:2])
        vel = np.clip((expert.target(sim.block_pose_px(), tip) - tip) * 0.4 / 512 / 0.25, -0.15, 0.15)
        xy = xy + vel * 0.1
        sim.set_joint_target(sim.inverse_kinematics(np.r_[xy, 0.015, DOWN], q_seed=sim.q_target))
        sim.step(50)
        if sim.coverage() > 0.95:
            break
    assert sim.coverage() > 0.95
