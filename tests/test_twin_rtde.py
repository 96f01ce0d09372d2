"""The twin as a network device: unmodified ur_rtde receive + control clients and the dashboard protocol."""

import socket
import time

import numpy as np
import pytest

rtde_control = pytest.importorskip("rtde_control")
rtde_receive = pytest.importorskip("rtde_receive")

from conftest import wait_for  # noqa: E402
from real_robot.twin.addresses import DASHBOARD_PORT  # noqa: E402
from real_robot.twin.launch import TwinProcess  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def measure_stream(r, period: float, n_packets: int = 150, timeout: float = 20.0) -> dict:
    """Watch the RTDE receive stream until ``n_packets`` new controller timestamps were seen: the controller
    rate (periods of simulated time per wall second) and the smallest step between consecutive timestamps."""
    seen, steps, last = [], [], r.getTimestamp()
    deadline = time.monotonic() + timeout
    while len(seen) < n_packets and time.monotonic() < deadline:
        ts = r.getTimestamp()
        if ts != last:
            seen.append((time.monotonic(), ts))
            steps.append(ts - last)
            last = ts
        time.sleep(period / 4)
    assert len(seen) >= 10, f"only {len(seen)} RTDE packets in {timeout} s"
    (w0, t0), (w1, t1) = seen[0], seen[-1]
    return {"rate_hz": (t1 - t0) / period / (w1 - w0), "min_step_periods": min(steps) / period,
            "whole_periods": all(abs(round(s / period) - s / period) < 1e-6 for s in steps)}


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
    from real_robot.twin.serve import serve

    with pytest.raises(ValueError, match="loopback"):
        serve("0.0.0.0", 500.0, render=False)


def assert_controller_rate(stream: dict, frequency: float) -> None:
    """The twin keeps the controller's clock: simulated time advances at wall speed in whole periods, and
    consecutive packets are one period apart. Tolerance for a loaded 2-core box: a twin falling far behind
    resynchronises (drops periods), so the rate may read low, but a 10 Hz twin reads 50x too low."""
    assert stream["whole_periods"]
    assert stream["min_step_periods"] == pytest.approx(1.0)
    assert 0.5 * frequency < stream["rate_hz"] < 1.2 * frequency, stream


def test_receive_interface_streams_at_controller_rate(twin):
    r = rtde_receive.RTDEReceiveInterface(twin.host)
    try:
        assert r.isConnected()
        pose = np.array(r.getActualTCPPose())
        assert pose.shape == (6,) and abs(pose[2] - 0.065) < 0.005  # home: pusher 5 cm above the 1.5 cm plane
        assert_controller_rate(measure_stream(r, 1 / 500), 500)
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
        assert wait_for(lambda: np.allclose(r.getActualTCPPose()[:3], p[:3], atol=2e-3)), \
            f"arm at {r.getActualTCPPose()[:3]}, commanded {p[:3]}"
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
        assert wait_for(lambda: not c.isProgramRunning())
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
            assert_controller_rate(measure_stream(r, 1 / 125, n_packets=60), 125)
        finally:
            r.disconnect()


def test_rate_check_fails_for_a_twin_at_10_hz():
    """The rate assertion above can fail: a controller at 10 Hz, watched as if it were a 500 Hz one, shows
    packets 50 periods apart (and 10 Hz measured at its own period)."""
    with TwinProcess(render=False, frequency=10) as t:
        r = rtde_receive.RTDEReceiveInterface(t.host, 10.0)
        try:
            stream = measure_stream(r, 1 / 500, n_packets=12)
            assert stream["min_step_periods"] == pytest.approx(50)
            with pytest.raises(AssertionError):
                assert_controller_rate(stream, 500)
            assert measure_stream(r, 1 / 10, n_packets=12)["rate_hz"] == pytest.approx(10, rel=0.3)
        finally:
            r.disconnect()
