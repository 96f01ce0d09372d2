"""The recording script as a user runs it, in a real process with the twin: SIGTERM (a process manager, `kill`)
stops it like Ctrl-C, keeping every episode; a SIGKILLed script takes its twin and arm controller down with it
instead of leaving them running."""

import json
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
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}  # this tree's code; lines as printed
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


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
    _wait_for_line(proc, "recording episode 1")
    _wait_for_line(proc, "  episode 1: 10 steps recorded")  # episode 1 under way
    helpers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert "interrupted: arm held" in rest, rest
    assert not _survivors(helpers), "twin or arm controller outlived the script"
    rb = ReplayBuffer.open(tmp_path / "demo.zarr")
    assert rb.n_episodes == 2  # the finished one and the interrupted one
    ep = rb.get_episode(1)
    assert len(ep["action"]) >= 10 and np.isfinite(ep["agent_pos"]).all()


def test_killed_script_takes_its_twin_and_controller_down(tmp_path):
    proc = _start_recording(tmp_path / "demo.zarr")
    _wait_for_line(proc, "episode 0:")
    helpers = _children(proc.pid)
    assert len(helpers) >= 2  # the twin and the arm controller (at least)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not _survivors(helpers), "twin or arm controller kept running after the script died"
    assert ReplayBuffer.open(tmp_path / "demo.zarr").n_episodes == 1


@pytest.mark.timeout(400)  # generous: on a loaded 2-core box the command alone (imports, twin, arm) can take minutes
def test_robodiff_deploy_sim_runs_a_checkpoint_on_the_twin(tmp_path, episode_factory, one_thread, capsys):
    """`robodiff deploy CKPT --sim` as a user runs it (the installed command, a fresh twin): a checkpoint written
    by the real training loop drives the simulated arm for a few seconds; results are not overwritten."""
    from importlib.metadata import entry_points

    from policies.train import train_policy

    if "real_robot" not in {ep.name for ep in entry_points(group="robodiff.commands")}:
        pytest.fail("robodiff's command entry points are not installed for this tree: run `pip install -e .`")
    data = tmp_path / "demos.zarr"
    rb = ReplayBuffer.create(data)
    for i in range(4):
        rb.add_episode(episode_factory(i, length=30, image=False))
    result = train_policy([
        "task=pusht_lowdim", "policy=unet_small", f"task.dataset.path={data}", "task.dataset.max_train_episodes=null",
        "task.dataset.val_ratio=0.25", "policy.unet.down_dims=[16,32]", "policy.unet.step_embed_dim=16",
        "policy.unet.kernel_size=3", "training.batch_size=16", "training.max_steps=2", "training.rollout_every=null",
        "training.progress=false", "training.num_threads=1", f"output_dir={tmp_path / 'run'}"])
    out = tmp_path / "deploy"
    cmd = [sys.executable, "-m", "robodiff.cli", "deploy", str(result.latest_checkpoint), "--sim", "--episodes", "1",
           "--duration", "3", "--sampler", "ddim", "--steps", "2", "--output", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    (episode,) = metrics["episodes"]
    assert episode["stopped_by"] in ("duration", "done") and episode["chunks"] >= 1 and episode["actions_sent"] >= 1
    assert episode["steps"] >= 10 and 0.0 <= episode["max_coverage"] <= 1.0
    recorded = ReplayBuffer.open(out / "episodes.zarr")
    assert recorded.n_episodes == 1 and recorded.episode_lengths[0] == episode["steps"]
    # a second run (the same command module, in-process) refuses to replace what the first wrote
    from robodiff.cli import script_main

    stamp = (out / "metrics.json").stat().st_mtime_ns
    assert script_main("real_robot.deploy", cmd[4:]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
