"""ReplayBuffer: round trips, crash safety with real SIGKILLs, bad input, the reference store."""

import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from conftest import REPO, make_episode
from robodiff.data import ReplayBuffer, ReplayBufferCorruptError, ReplayBufferError


def assert_episode_equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("where", ["memory", "dir"])
def test_round_trip_and_pop(tmp_path, where):
    rb = ReplayBuffer.create(None if where == "memory" else tmp_path / "rb.zarr")
    eps = [make_episode(i) for i in range(4)]
    for ep in eps:
        rb.add_episode(ep)
    lengths = [len(ep["action"]) for ep in eps]
    assert rb.n_episodes == 4 and rb.n_steps == sum(lengths)
    np.testing.assert_array_equal(rb.episode_lengths, lengths)
    np.testing.assert_array_equal(rb.episode_ends, np.cumsum(lengths))
    for i, ep in enumerate(eps):
        assert_episode_equal(rb.get_episode(i), ep)
    assert rb["img"].dtype == np.uint8 and rb["img"].shape[1:] == (96, 96, 3)
    assert_episode_equal(rb.pop_episode(), eps[-1])
    assert rb.n_episodes == 3 and rb.n_steps == sum(lengths[:3])
    rb.add_episode(make_episode(10))
    assert_episode_equal(rb.get_episode(3), make_episode(10))
    if where == "dir":
        reopened = ReplayBuffer.open(tmp_path / "rb.zarr")
        assert reopened.n_episodes == 4 and not reopened.recovered_tail
        assert_episode_equal(reopened.get_episode(3), make_episode(10))


def test_chunks_and_compressor(tmp_path):
    rb = ReplayBuffer.create(tmp_path / "rb.zarr")
    rb.add_episode(make_episode(0), chunks={"action": (7, 2)})
    info = rb.info()
    assert info["keys"]["action"]["chunks"] == [7, 2]
    assert "zstd" in info["keys"]["img"]["compressor"]
    assert info["keys"]["img"]["chunks"][1:] == [96, 96, 3]


def test_copy_to_memory_and_save_zip(tmp_path):
    rb = ReplayBuffer.create(tmp_path / "rb.zarr")
    for i in range(3):
        rb.add_episode(make_episode(i))
    mem = rb.copy_to_memory(keys=["action", "state"])
    assert mem.backend == "numpy" and mem.keys() == ["action", "state"]
    np.testing.assert_array_equal(mem["action"][:], rb["action"][:])
    z = rb.save(tmp_path / "copy.zip")
    assert z.n_episodes == 3
    assert_episode_equal(z.get_episode(2), make_episode(2))
    z.close()
    again = ReplayBuffer.open(tmp_path / "copy.zip")
    assert_episode_equal(again.get_episode(1), make_episode(1))
    with pytest.raises(ReplayBufferError, match="zip store"):
        ReplayBuffer.open(tmp_path / "copy.zip", mode="a")
    # save leaves no temporaries behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.zip", "rb.zarr"]


def test_append_mode_reopen(tmp_path):
    path = tmp_path / "rb.zarr"
    rb = ReplayBuffer.create(path)
    rb.add_episode(make_episode(0))
    rb2 = ReplayBuffer.open(path, mode="a")
    rb2.add_episode(make_episode(1))
    assert ReplayBuffer.open(path).n_episodes == 2


# ---------------------------------------------------------------- crash safety
CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import zarr
    from conftest import make_episode
    from robodiff.data import ReplayBuffer
    kill_at = int(sys.argv[2])  # kill ourselves at the kill_at-th zarr append of the last episode (-1: never)
    rb = ReplayBuffer.create(sys.argv[1])
    for i in range(3):
        rb.add_episode(make_episode(i))
    calls = [0]
    original = zarr.Array.append
    def append(self, *a, **k):
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        calls[0] += 1
        return original(self, *a, **k)
    zarr.Array.append = append
    rb.add_episode(make_episode(3))
    print("committed", flush=True)
""")


@pytest.mark.parametrize("kill_at", [1, 3, 5])  # 5 keys: 0-4 data arrays, 5 = the episode_ends commit
def test_sigkill_mid_append_keeps_earlier_episodes(tmp_path, kill_at):
    """A writer SIGKILLed part-way through an append: earlier episodes intact, tail trimmed."""
    path = tmp_path / "rb.zarr"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO), tests=str(REPO / "tests")))
    proc = subprocess.run([sys.executable, str(script), str(path), str(kill_at)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with pytest.warns(UserWarning, match="partial tail"):
        ro = ReplayBuffer.open(path, mode="r")
    assert ro.n_episodes == 3 and ro.recovered_tail
    for i in range(3):
        assert_episode_equal(ro.get_episode(i), make_episode(i))
    with pytest.warns(UserWarning, match="trimmed"):
        rb = ReplayBuffer.open(path, mode="a")
    assert rb.n_episodes == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = ReplayBuffer.open(path, mode="a")
    assert not clean.recovered_tail
    assert all(clean[k].shape[0] == clean.n_steps for k in clean.keys())
    clean.add_episode(make_episode(7))
    assert_episode_equal(ReplayBuffer.open(path).get_episode(3), make_episode(7))
    assert not list(path.rglob("*.partial"))


def test_sigkill_at_random_times(tmp_path):
    """Kill a writer that appends in a loop at an arbitrary moment, three times over."""
    path = tmp_path / "rb.zarr"
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
        from conftest import make_episode
        from robodiff.data import ReplayBuffer
        rb = ReplayBuffer.open(sys.argv[1], mode="a")
        i = rb.n_episodes
        while True:
            rb.add_episode(make_episode(i, length=40))
            print(i, flush=True)
            i += 1
    """)
    ReplayBuffer.create(path)
    rng = np.random.default_rng(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2):
            proc.stdout.readline()
        import time
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rb = ReplayBuffer.open(path, mode="a")
        assert rb.n_episodes >= 2
        for i in range(rb.n_episodes):
            assert_episode_equal(rb.get_episode(i), make_episode(i, length=40))


# ---------------------------------------------------------------- bad input
@pytest.fixture
def filled(tmp_path):
    rb = ReplayBuffer.create(tmp_path / "rb.zarr")
    rb.add_episode(make_episode(0, image=False))
    return rb


def _assert_unchanged(rb, before):
    assert rb.n_episodes == before[0] and rb.n_steps == before[1]
    assert all(rb[k].shape[0] == rb.n_steps for k in rb.keys())


@pytest.mark.parametrize("mutate,match", [
    (lambda ep: ep.update(action=ep["action"][:-1]), "different lengths"),
    (lambda ep: ep.pop("state"), r"missing \['state'\]"),
    (lambda ep: ep.update(extra=np.zeros((len(ep["action"]), 1))), r"extra \['extra'\]"),
    (lambda ep: ep.update(state=np.zeros((len(ep["state"]), 4), np.float32)), r"'state'.*\(4,\).*\(5,\)"),
    (lambda ep: ep.update(n_contacts=np.full(ep["n_contacts"].shape, "x")), "n_contacts.*dtype"),
    (lambda ep: ep["action"].__setitem__((2, 1), np.nan), r"'action' contains NaN.*\(2, 1\)"),
    (lambda ep: ep["state"].__setitem__((0, 0), np.inf), "'state' contains NaN or inf"),
])
def test_bad_episode_raises_and_writes_nothing(filled, mutate, match):
    ep = make_episode(1, image=False)
    mutate(ep)
    before = (filled.n_episodes, filled.n_steps)
    with pytest.raises(ReplayBufferError, match=match):
        filled.add_episode(ep)
    _assert_unchanged(filled, before)


def test_wrong_dtype_kind(tmp_path):
    rb = ReplayBuffer.create(tmp_path / "rb.zarr")
    rb.add_episode(make_episode(0))
    ep = make_episode(1)
    ep["img"] = ep["img"].astype(np.float32)
    with pytest.raises(ReplayBufferError, match="'img': dtype float32 cannot be stored.*uint8"):
        rb.add_episode(ep)
    assert rb.n_episodes == 1


def test_read_only_and_paths(tmp_path, filled):
    ro = ReplayBuffer.open(filled.path, mode="r")
    with pytest.raises(ReplayBufferError, match="read-only.*mode='a'"):
        ro.add_episode(make_episode(1, image=False))
    with pytest.raises(ReplayBufferError, match="read-only"):
        ro.pop_episode()
    with pytest.raises(ReplayBufferError, match="does not exist"):
        ReplayBuffer.open(tmp_path / "nope.zarr")
    import zarr
    zarr.open_group(tmp_path / "other.zarr", mode="w").create_group("stuff")
    with pytest.raises(ReplayBufferError, match="not a replay buffer"):
        ReplayBuffer.open(tmp_path / "other.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ReplayBufferError, match="not a"):
        ReplayBuffer.open(tmp_path / "plain")
    with pytest.raises(ReplayBufferError, match="already exists"):
        ReplayBuffer.create(filled.path)


# ---------------------------------------------------------------- partial tail vs corruption
def _store_files(path):
    """Every file of a directory store with its bytes: to assert that nothing was written."""
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture
def five_steps_state_lost_a_row(tmp_path):
    """The issue's example: one committed 5-step episode, but data/state holds only 4 rows."""
    import zarr
    path = tmp_path / "rb.zarr"
    rb = ReplayBuffer.create(path)
    rb.add_episode(make_episode(0, length=5, image=False))
    zarr.open_group(path, mode="r+")["data/state"].resize((4, 5))
    return path


@pytest.mark.parametrize("mode", ["r", "a"])
def test_short_array_is_corruption_and_nothing_is_written(five_steps_state_lost_a_row, mode):
    path = five_steps_state_lost_a_row
    before = _store_files(path)
    with pytest.raises(ReplayBufferCorruptError, match=r"data/state has 4 rows.*ending at step 5.*"
                                                       r"robodiff data repair"):
        ReplayBuffer.open(path, mode=mode)
    assert _store_files(path) == before  # the committed episode is still on disk, nothing trimmed or deleted
    ep = make_episode(0, length=5, image=False)
    import zarr
    root = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(root["data/action"][:], ep["action"])
    assert root["meta/episode_ends"][:].tolist() == [5]


def test_non_increasing_episode_ends_are_corruption(tmp_path):
    import zarr
    path = tmp_path / "rb.zarr"
    rb = ReplayBuffer.create(path)
    for i in range(3):
        rb.add_episode(make_episode(i, length=10, image=False))
    zarr.open_group(path, mode="r+")["meta/episode_ends"][1] = 5  # [10, 5, 30]
    before = _store_files(path)
    for mode in ("r", "a"):
        with pytest.raises(ReplayBufferCorruptError, match=r"not increasing: episode 1 ends at 5 after 10"):
            ReplayBuffer.open(path, mode=mode)
    assert _store_files(path) == before


def test_grown_but_unwritten_end_is_a_partial_tail(tmp_path):
    """A writer killed after episode_ends grew but before its value was written leaves a trailing 0."""
    import zarr
    path = tmp_path / "rb.zarr"
    rb = ReplayBuffer.create(path)
    for i in range(2):
        rb.add_episode(make_episode(i, length=10, image=False))
    root = zarr.open_group(path, mode="r+")
    for k in root["data"].array_keys():  # data rows of the third episode, written before the commit
        root["data"][k].resize((30, *root["data"][k].shape[1:]))
    root["meta/episode_ends"].resize((3,))
    assert root["meta/episode_ends"][:].tolist() == [10, 20, 0]
    with pytest.warns(UserWarning, match="partial tail"):
        ro = ReplayBuffer.open(path, mode="r")
    assert ro.n_episodes == 2 and ro.recovered_tail == {"action": 10, "keypoint": 10, "n_contacts": 10,
                                                        "state": 10, "meta/episode_ends": 1}
    with pytest.warns(UserWarning, match="trimmed"):
        rb = ReplayBuffer.open(path, mode="a")
    rb.add_episode(make_episode(5, length=7, image=False))
    assert ReplayBuffer.open(path).episode_ends.tolist() == [10, 20, 27]


def test_repair_writes_a_consistent_copy(five_steps_state_lost_a_row, tmp_path):
    from robodiff.cli import main
    src = five_steps_state_lost_a_row
    before = _store_files(src)
    assert main(["data", "repair", str(src), str(tmp_path / "kept.zarr"), "--drop-key", "state"]) == 0
    kept = ReplayBuffer.open(tmp_path / "kept.zarr")
    assert kept.n_episodes == 1 and "state" not in kept.keys()
    ep = make_episode(0, length=5, image=False)
    assert_episode_equal(kept.get_episode(0), {k: v for k, v in ep.items() if k != "state"})
    # without dropping the short array, only episodes every array holds survive (here none)
    assert main(["data", "repair", str(src), str(tmp_path / "all_keys.zarr")]) == 0
    assert ReplayBuffer.open(tmp_path / "all_keys.zarr").n_episodes == 0
    assert _store_files(src) == before
    assert main(["data", "info", str(src)]) == 2  # the corrupt store: one clear error, exit 2


def test_refuses_to_write_with_zarr_before_3_1_3(tmp_path, monkeypatch, filled):
    import zarr
    from robodiff.data.replay_buffer import require_atomic_zarr
    for ok in ("3.1.3", "3.1.6", "3.2.0.dev4", "4.0.0"):
        require_atomic_zarr(ok)
    monkeypatch.setattr(zarr, "__version__", "3.1.2")
    before = _store_files(filled.path)
    with pytest.raises(ReplayBufferError, match=r"zarr 3\.1\.2 is installed.*pip install 'zarr>=3\.1\.3'"):
        ReplayBuffer.open(filled.path, mode="a")
    with pytest.raises(ReplayBufferError, match=r"zarr>=3\.1\.3"):
        ReplayBuffer.create(tmp_path / "new.zarr")
    assert not (tmp_path / "new.zarr").exists() and _store_files(filled.path) == before
    assert ReplayBuffer.open(filled.path, mode="r").n_episodes == 1  # reading stays possible


# ---------------------------------------------------------------- reference data
def test_reads_reference_store(pusht_zarr):
    rb = ReplayBuffer.open(pusht_zarr)
    assert rb.n_episodes == 206 and rb.n_steps == 25650
    assert rb.info()["zarr_format"] == 2
    lengths = rb.episode_lengths
    assert lengths.min() == 49 and lengths.max() == 246
    ep = rb.get_episode(0, keys=["state", "action", "keypoint"])
    assert ep["state"].shape == (lengths[0], 5) and ep["keypoint"].shape == (lengths[0], 9, 2)
    # the images are float32 0-255 on disk; copying can turn them into uint8 exactly
    mem = rb.copy_to_memory(keys=["img"], dtypes={"img": np.uint8})
    first = np.asarray(rb["img"][:50])
    np.testing.assert_array_equal(mem["img"][:50], first.astype(np.uint8))
