"""Checkpoints: atomic saves survive a kill mid-write; corrupt / foreign / newer files give clear errors."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from robodiff.training.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    load_checkpoint,
    make_checkpoint,
    rng_state,
    set_rng_state,
)

REPO = Path(__file__).resolve().parents[1]


def test_roundtrip_keeps_config_tensors_and_rng(tmp_path):
    state = {"w": torch.randn(3, 4)}
    rng = rng_state()
    expected = torch.rand(3)
    path = atomic_save(make_checkpoint({"a": [1, 2], "b": {"c": None}}, model=state, rng=[rng],
                                       progress={"step": 7}), tmp_path / "x.ckpt")
    ck = load_checkpoint(path)
    assert ck["config"] == {"a": [1, 2], "b": {"c": None}}
    assert torch.equal(ck["model"]["w"], state["w"]) and ck["progress"]["step"] == 7
    set_rng_state(ck["rng"][0])
    assert torch.equal(torch.rand(3), expected)  # the torch stream continues where it was saved
    assert not list(tmp_path.glob(".*.tmp"))


def test_clear_errors_for_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    good = atomic_save(make_checkpoint({}, progress={"step": 1}), tmp_path / "good.ckpt")
    data = good.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"format": "robodiff.checkpoint", "format_version": FORMAT_VERSION + 1, "config": "{}"},
               tmp_path / "new.ckpt")
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        load_checkpoint(tmp_path / "new.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a robodiff checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")
    # a pickle that would construct an arbitrary object is refused (weights_only), never executed
    torch.save({"format": "robodiff.checkpoint", "obj": Path("x")}, tmp_path / "code.ckpt")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "code.ckpt")


SAVER = textwrap.dedent("""
    import sys, torch
    from robodiff.training.checkpoint import atomic_save, make_checkpoint
    big = {f"w{i}": torch.randn(1024, 1024) for i in range(12)}  # ~48 MB: most time is spent writing
    for step in range(1, 10_000):
        atomic_save(make_checkpoint({"run": "kill"}, model=big, progress={"step": step}), sys.argv[1])
        print(step, flush=True)
""")


@pytest.mark.slow
def test_kill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    target = tmp_path / "latest.ckpt"
    for delay in (0.05, 0.13, 0.29):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], cwd=REPO, stdout=subprocess.PIPE,
                                text=True)
        saved = [int(proc.stdout.readline())]  # one complete save, then kill during a later one
        time.sleep(delay)
        proc.kill()
        proc.wait()
        saved += [int(x) for x in proc.stdout.read().split()]
        ck = load_checkpoint(target)
        assert ck["progress"]["step"] in saved or ck["progress"]["step"] == saved[-1] + 1
        assert ck["model"]["w11"].shape == (1024, 1024)
    # temp files of killed saves are left behind but are never mistaken for checkpoints
    assert [p.name for p in tmp_path.glob("*.ckpt")] == ["latest.ckpt"]
