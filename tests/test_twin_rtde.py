"""The twin as a network device: unmodified ur_rtde receive + control clients and the dashboard protocol."""

import socket
import time

import numpy as np
import pytest

rtde_control = pytest.importorskip("rtde_control")
rtde_receive = pytest.importorskip("rtde_receive")

from real_robot.twin.launch import TwinProcess  # noqa: E402
from real_robot.twin.station import DASHBOARD_PORT  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def twin():
    with TwinProcess(render=False) as t:
        yield t
    assert not t.alive


def dashboard(host: str, *commands: str) -> list[str]:
    with socket.create_connection((host, DASHBOARD_PORT), timeout=5) as s:
        f = s.makefile("rw")
        assert f.readline().startswith("Connected: Universal Robots Dashboard Server")
        out = []
        for c in commands:
            f.write(c + "\n")
            f.flush()
            out.append(f.readline().strip())
        return out


def test_twin_binds_loopback_only():
    from real_robot.twin.station import serve

    with pytest.raises(ValueError, match="loopback"):
        serve("0.0.0.0", 500.0, render=False)


def test_receive_interface_streams_at_controller_rate(twin):
    r = rtde_receive.RTDEReceiveInterface(twin.host)
    try:
        assert r.isConnected()
        pose = np.array(r.getActualTCPPose())
        assert pose.shape == (6,) and abs(pose[2] - 0.065) < 0.005  # home: pusher 5 cm above the 1.5 cm plane
        t0 = r.getTimestamp()
        time.sleep(0.3)
        dt_robot = r.getTimestamp() - t0
        assert dt_robot > 0 and abs(round(dt_robot * 500) - dt_robot * 500) < 1e-6  # whole 2 ms periods
        assert len(r.getActualQ()) == 6
    finally:
        r.disconnect()


def test_control_interface_moves_the_simulated_arm(twin):
    r = rtde_receive.RTDEReceiveInterface(twin.host)
    c = rtde_control.RTDEControlInterface(twin.host)
    try:
        assert c.isProgramRunning()
        assert dashboard(twin.host, "programState")[0].startswith("PLAYING")
        start = np.array(r.getActualTCPPose())
        goal = start + np.array([0.05, -0.03, -0.02, 0, 0, 0])
        assert c.moveL(goal.tolist(), 0.25, 1.0)  # blocking: returns once the twin reports done
        np.testing.assert_allclose(r.getActualTCPPose()[:3], goal[:3], atol=2e-3)
        # servoL stream: a 2 cm line over 0.4 s at 500 Hz
        for i in range(200):
            t = c.initPeriod()
            p = goal.copy()
            p[1] += 0.02 * (i + 1) / 200
            c.servoL(p.tolist(), 0.5, 0.5, 0.002, 0.1, 300)
            c.waitPeriod(t)
        time.sleep(0.3)
        np.testing.assert_allclose(r.getActualTCPPose()[:3], p[:3], atol=2e-3)
        c.servoStop()
        np.testing.assert_allclose(c.getForwardKinematics()[:3], r.getActualTCPPose()[:3], atol=1e-3)
        c.stopScript()
        assert not c.isProgramRunning()
        assert dashboard(twin.host, "programState")[0].startswith("STOPPED")
    finally:
        c.disconnect()
        r.disconnect()


def test_unsupported_command_stops_the_program_instead_of_pretending(twin):
    c = rtde_control.RTDEControlInterface(twin.host)
    try:
        assert c.isProgramRunning()
        c.teachMode()  # freedrive: nothing the twin can simulate -> program stops, as on a script error
        time.sleep(0.05)
        assert not c.isProgramRunning()
    finally:
        c.disconnect()


def test_dashboard_answers_like_polyscope(twin):
    version, robotmode, safety, remote, load, bogus = dashboard(
        twin.host, "PolyscopeVersion", "robotmode", "safetystatus", "is in remote control", "load x.urp", "foo")
    assert version.startswith("URSoftware 5.")
    assert robotmode == "Robotmode: RUNNING" and safety == "Safetystatus: NORMAL" and remote == "true"
    assert load == "File not found: x.urp"  # no PolyScope programs in the twin: said, not faked
    assert bogus.startswith("could not understand")


def test_cb3_twin_runs_at_125_hz():
    with TwinProcess(render=False, frequency=125) as t:
        r = rtde_receive.RTDEReceiveInterface(t.host)  # frequency chosen from the controller version
        try:
            t0 = r.getTimestamp()
            time.sleep(0.4)
            dt_robot = r.getTimestamp() - t0
            assert dt_robot > 0
            assert abs(round(dt_robot * 125) - dt_robot * 125) < 1e-6  # whole 8 ms controller periods
        finally:
            r.disconnect()
