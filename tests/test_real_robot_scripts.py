"""The recording script as a user runs it, in a real process with the twin: SIGTERM (a process manager, `kill`)
stops it like Ctrl-C, keeping every episode; a SIGKILLed script takes its twin and arm controller down with it
instead of leaving them running."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rtde_control")

from robodiff.data import ReplayBuffer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _survivors(pids: set[int], grace: float = 15.0) -> list[str]:
    """Command lines of the processes in ``pids`` still running after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    out = []
    for p in pids:
        if _alive(p):
            try:
                out.append(Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                pass
    return out


def _start_recording(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(REPO / "scripts/demo_real_robot.py"), "--sim", "--teleop", "scripted",
           "--episodes", "3", "--output", str(out)]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 60.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    proc.kill()
    pytest.fail(f"no line starting {prefix!r} from the script; it printed:\n{''.join(lines)}")


def test_sigterm_stops_the_arm_and_keeps_every_episode(tmp_path):
    proc = _start_recording(tmp_path / "demo.zarr")
    _wait_for_line(proc, "episode 0:")
    time.sleep(1.5)  # well into episode 1
    helpers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert "interrupted: arm held" in rest, rest
    assert not _survivors(helpers), "twin or arm controller outlived the script"
    rb = ReplayBuffer.open(tmp_path / "demo.zarr")
    assert rb.n_episodes == 2  # the finished one and the interrupted one
    ep = rb.get_episode(1)
    assert len(ep["action"]) >= 5 and np.isfinite(ep["agent_pos"]).all()


def test_killed_script_takes_its_twin_and_controller_down(tmp_path):
    proc = _start_recording(tmp_path / "demo.zarr")
    _wait_for_line(proc, "episode 0:")
    helpers = _children(proc.pid)
    assert len(helpers) >= 2  # the twin and the arm controller (at least)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not _survivors(helpers), "twin or arm controller kept running after the script died"
    assert ReplayBuffer.open(tmp_path / "demo.zarr").n_episodes == 1
