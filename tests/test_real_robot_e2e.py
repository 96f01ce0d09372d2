"""End to end on the twin: start it, connect with ur_rtde, teleoperate along a scripted path, record, train a
tiny diffusion policy on the recording and run it closed loop, then the safety and fault paths.

One twin (MuJoCo physics + RTDE/dashboard/script servers + a rendering camera) for the module; tests run in file
order and share it; the last one kills it to check the lost-connection path.
"""

import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rtde_control")

from conftest import wait_for  # noqa: E402
from real_robot.cameras import CameraStalled, RingCamera  # noqa: E402
from real_robot.station import PushTStation  # noqa: E402
from real_robot.runner import run_policy, run_teleop  # noqa: E402
from real_robot.safety import EStop  # noqa: E402
from real_robot.session import open_station  # noqa: E402
from real_robot.shm_ring import SharedRing  # noqa: E402
from real_robot.teleop import ScriptedTeleop  # noqa: E402
from robodiff.data import ReplayBuffer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
SPEED, SIDE_S = 0.8, 0.8  # scripted stick: 80 % deflection, 0.8 s per side of a square


@pytest.fixture(scope="module")
def rig():
    with open_station(sim=True, frequency=500.0) as (station, twin):
        yield station, twin


@pytest.fixture(scope="module")
def recorded(rig, tmp_path_factory):
    station, _ = rig
    out = tmp_path_factory.mktemp("demo")
    rb = ReplayBuffer.create(out / "demo.zarr")
    station.start_episode()
    report = run_teleop(station, ScriptedTeleop.square(side_s=SIDE_S, speed=SPEED), EStop(), max_speed=0.12)
    idx = station.end_episode(rb, video_dir=out / "videos")
    return rb, idx, report, out


def _tcp_xy(station):
    return station.arm.get_state()["tcp_pose"][0, :2]


def _assert_held(station, window: float = 0.5, atol: float = 0.003):
    """The arm stays where it is: sampled through ``window`` s (holding is the absence of motion over time)."""
    p0, deadline = _tcp_xy(station), time.monotonic() + window
    while time.monotonic() < deadline:
        np.testing.assert_allclose(_tcp_xy(station), p0, atol=atol)
        time.sleep(0.05)


def _inside(station, xy, tol=1e-3):
    return np.all(xy >= np.array(station.cfg.xy_low) - tol) and np.all(xy <= np.array(station.cfg.xy_high) + tol)


def test_scripted_teleop_moves_the_arm_and_records_an_episode(rig, recorded):
    station, _ = rig
    rb, idx, report, out = recorded
    assert report.stopped_by == "button" and report.actions_stale == 0
    rb = ReplayBuffer.open(out / "demo.zarr")  # readable from disk
    assert rb.n_episodes == 1 and idx == 0
    ep = rb.get_episode(0)
    T = len(ep["timestamp"])
    assert abs(T - 4 * SIDE_S * station.cfg.control_hz) <= 4
    assert ep["img"].shape == (T, 96, 96, 3) and ep["img"].dtype == np.uint8
    assert ep["agent_pos"].shape == ep["action"].shape == (T, 2)
    assert ep["robot_eef_pose"].shape == ep["robot_joint"].shape == (T, 6)
    dts = np.diff(ep["timestamp"])
    assert np.all(dts > 0)  # ordered
    # the commanded square: +x, +y, -x, -y of 0.12*0.8*0.8 = 7.7 cm, and the arm followed it
    a = ep["action"] - ep["action"][0]
    side = 0.12 * SPEED * SIDE_S
    assert a[:, 0].max() == pytest.approx(side, abs=0.015) and a[:, 1].max() == pytest.approx(side, abs=0.015)
    # the state followed the commands: at rest after the last one, the pusher is on it
    assert wait_for(lambda: np.allclose(_tcp_xy(station), ep["action"][-1], atol=0.003)), \
        f"pusher at {_tcp_xy(station)}, last command {ep['action'][-1]}"
    assert np.abs(ep["agent_pos"] - ep["action"]).max() < 0.05  # never far from the command on the way
    assert np.abs(ep["img"][0].astype(int) - ep["img"][T // 2]).mean() > 0.5  # the camera saw it move
    assert (out / "videos" / "episode_0000.mp4").stat().st_size > 1000


def _tiny_policy(rb):
    """A 2-level UNet diffusion policy on agent_pos, fit on the recorded episode for a few steps."""
    import torch

    import policies
    from robodiff.data import LinearNormalizer

    cfg = {"denoiser": "unet", "horizon": 16, "n_obs_steps": 2, "n_action_steps": 8,
           "unet": {"down_dims": [16, 32], "kernel_size": 3, "n_groups": 4, "step_embed_dim": 16},
           "noise": {"num_train_timesteps": 20}, "sampler": {"name": "ddim", "steps": 4}}
    shape_meta = {"obs": {"agent_pos": {"shape": [2], "type": "lowdim"}}, "action": {"shape": [2]}}
    torch.manual_seed(0)
    policy = policies.make_policy(cfg, shape_meta)
    ep = rb.get_episode(0)
    policy.set_normalizer(LinearNormalizer().fit({"agent_pos": ep["agent_pos"], "action": ep["action"]}))
    T = len(ep["action"])
    starts = np.arange(0, T - 16)
    obs = torch.as_tensor(np.stack([ep["agent_pos"][s:s + 2] for s in starts]))
    act = torch.as_tensor(np.stack([ep["action"][s:s + 16] for s in starts]))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    for _ in range(20):
        loss = policy.compute_loss({"obs": {"agent_pos": obs}, "action": act})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()


def test_tiny_policy_runs_closed_loop_with_bounds_held_and_no_stale_action(rig, recorded):
    from real_robot.policy_adapter import PolicyAdapter

    station, _ = rig
    policy = PolicyAdapter(_tiny_policy(recorded[0]), obs_keys=["agent_pos"])
    tcp = []
    before = station.arm.stats()
    report = run_policy(station, policy, EStop(), n_action_steps=8, duration=4.0,
                        on_chunk=lambda obs, chunk: tcp.append(station.arm.get_state(200)["tcp_pose"][:, :2]))
    after = station.arm.stats()
    assert report.stopped_by == "duration" and report.chunks >= 3 and report.actions_sent >= 16
    # no stale action executed: every waypoint the controller accepted was still in the future ...
    assert after["waypoints"] - before["waypoints"] >= report.actions_sent - report.actions_stale - 1
    assert after["min_slack_us"] > 0
    # ... and the station dropped (not sent) the ones already due
    assert report.actions_sent + report.actions_stale >= report.chunks * 8
    assert all(_inside(station, xy) for xy in tcp)


def test_done_condition_ends_the_run_and_holds(rig):
    station, _ = rig
    chunks = []
    report = run_policy(station, lambda obs: {"action": (obs["agent_pos"][-1] + [0.01, 0])[None, None].repeat(8, 1)},
                        EStop(), duration=60.0, on_chunk=lambda obs, chunk: chunks.append(1),
                        done=lambda: len(chunks) >= 2)
    assert report.stopped_by == "done" and report.chunks in (2, 3)  # checked once per control period
    _assert_held(station)


def test_out_of_bounds_actions_are_clipped(rig):
    station, _ = rig
    report = run_policy(station, lambda obs: {"action": np.full((1, 8, 2), [1.0, 0.5])}, EStop(),
                        duration=2.5)
    assert report.actions_clipped >= 8
    xy = station.arm.get_state(50)["tcp_pose"][:, :2]
    assert _inside(station, xy)
    np.testing.assert_allclose(xy[-1], [station.cfg.xy_high[0], station.cfg.xy_high[1]], atol=0.01)


def test_nan_action_is_rejected_and_arm_holds(rig):
    station, _ = rig
    calls = []

    def policy(obs):
        calls.append(1)
        if len(calls) == 1:  # first chunk: move 5 cm
            return {"action": (obs["agent_pos"][-1] + [-0.05, -0.05])[None, None].repeat(8, 1)}
        return {"action": np.full((1, 8, 2), np.nan)}

    run_policy(station, policy, EStop(), duration=1.2)
    rejected_before = station.counters.chunks_rejected
    p0 = station.arm.get_state()["tcp_pose"][0, :2]
    report = run_policy(station, lambda obs: {"action": np.full((1, 8, 2), np.nan)}, EStop(), duration=1.5)
    p1 = station.arm.get_state()["tcp_pose"][0, :2]
    assert rejected_before >= 1 and report.chunks_rejected >= 1 and report.actions_sent == 0
    assert np.linalg.norm(p1 - p0) < 0.003


def test_policy_stall_watchdog_holds_and_estop_ends_the_run(rig):
    station, _ = rig
    calls = []

    hung, released = threading.Event(), threading.Event()

    def policy(obs):
        calls.append(1)
        if len(calls) == 2:
            hung.set()
            released.wait(30)  # inference hangs until the test has seen the watchdog act
        return {"action": (obs["agent_pos"][-1] + [0.01, 0.0])[None, None].repeat(8, 1)}

    estop = EStop()

    def operator():  # presses e-stop once the watchdog has made the arm hold
        if hung.wait(30):
            holds = station.arm.stats()["holds"]
            wait_for(lambda: station.arm.stats()["holds"] > holds, timeout=20)
        estop.trip("e-stop key")
        released.set()

    threading.Thread(target=operator, daemon=True).start()
    report = run_policy(station, policy, estop, duration=60.0, policy_timeout=0.5)
    assert report.watchdog_holds >= 1
    assert report.stopped_by == "e-stop key"


def test_camera_stall_pauses_the_policy_and_holds(rig):
    """A camera whose producer stops: the policy is not called on stale frames and the arm holds."""
    station, twin = rig
    src = station.cameras["front"]
    ring = SharedRing.create(f"robodiff_test_stall_{os.getpid()}", {"color": ((96, 96, 3), np.uint8),
                                                                     "step": ((), np.int64)}, 64)
    stop_feeding = threading.Event()
    ring_last_put = [0.0]

    def feed():  # a camera driver relaying the twin camera at 30 fps, until it "hangs"
        while not stop_feeding.is_set():
            try:
                f = src.get(1)
            except CameraStalled:  # the twin's own camera lagging on a loaded machine: try again
                time.sleep(0.01)
                continue
            ring_last_put[0] = time.time()
            ring.put(ring_last_put[0], color=f["color"][0], step=0)
            time.sleep(1 / 30)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    cam = RingCamera(ring.name, (96, 96), stall_timeout=0.3)
    cam.wait_first_frame(timeout=10.0)
    stalled = PushTStation(station.arm, {"front": cam}, station.cfg)
    calls = []

    def policy(obs):
        calls.append(time.time())
        if len(calls) == 3:
            stop_feeding.set()  # the camera "hangs" while the policy is running
        return {"action": (obs["agent_pos"][-1] + [0.02, 0.0])[None, None].repeat(8, 1)}

    holds, held_since = station.arm.stats()["holds"], []

    def stalled_and_watched() -> bool:
        """Done 1 s after the stall made the arm hold: long enough to see that the policy stays paused."""
        if not held_since and stop_feeding.is_set() and station.arm.stats()["holds"] > holds:
            held_since.append(time.monotonic())
        return bool(held_since) and time.monotonic() - held_since[0] > 1.0

    try:
        report = run_policy(stalled, policy, EStop(), duration=60.0, done=stalled_and_watched)
    finally:
        stop_feeding.set()
        feeder.join(2)
        cam.close()
        ring.close()
    last_frame = ring_last_put[0]
    assert report.camera_stalls >= 1
    # no inference on a frame older than the stall timeout (0.3 s; +0.5 s for a loaded box's scheduling)
    assert all(t < last_frame + 0.8 for t in calls), (last_frame, calls)
    assert station.arm.stats()["holds"] > holds


def test_ctrl_c_leaves_arm_held_and_recording_readable(rig, tmp_path):
    station, _ = rig
    rb = ReplayBuffer.create(tmp_path / "interrupted.zarr")
    station.start_episode()
    # a process started in the background inherits an ignored SIGINT; Ctrl-C must raise here regardless
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    chunks, enough = [], threading.Event()

    def on_chunk(obs, chunk):
        chunks.append(1)
        if len(chunks) == 4:  # a few steps recorded: now the person presses Ctrl-C
            enough.set()

    threading.Thread(target=lambda: enough.wait(60) and os.kill(os.getpid(), signal.SIGINT), daemon=True).start()
    estop = EStop()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_policy(station, lambda obs: {"action": (obs["agent_pos"][-1] + [0.01, 0])[None, None].repeat(8, 1)},
                       estop, n_action_steps=2, duration=60.0, on_chunk=on_chunk)
    finally:
        signal.signal(signal.SIGINT, previous)
        station.end_episode(rb)
    assert estop.tripped and estop.reason == "Ctrl-C"
    ep = ReplayBuffer.open(tmp_path / "interrupted.zarr").get_episode(0)
    assert len(ep["action"]) >= 3 and np.isfinite(ep["agent_pos"]).all()
    _assert_held(station)


def test_lost_connection_stops_cleanly_with_a_clear_message(rig):
    station, twin = rig
    twin.kill()  # the controller vanishes without a goodbye
    assert wait_for(lambda: not station.arm.alive, timeout=15)
    assert "lost the connection to the UR controller" in station.arm.error
    from real_robot.arm import ArmError

    with pytest.raises(ArmError, match="lost the connection"):
        station.arm.schedule_waypoint(np.zeros(6), time.time() + 1)
