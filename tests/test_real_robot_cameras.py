"""Two twin cameras end to end: the twin renders front and side into their own rings, ``robodiff record --sim
--cameras front,side`` stores both (``img``, ``img_side``), task=ur_pusht_image_2cam builds a policy with an image
encoder per camera, and ``robodiff deploy --sim`` opens the cameras that policy needs and feeds it both images.

The commands run in this process (``script_main``, as scripts/*.py run them) to spare a second interpreter's
imports on the shared 2-core box; each starts and stops its own twin and arm controller.
"""

import argparse
import json
import signal

import numpy as np
import pytest

pytest.importorskip("rtde_control")

from real_robot.cameras import RingCamera  # noqa: E402
from real_robot.twin.addresses import camera_list  # noqa: E402
from real_robot.twin.launch import TwinProcess  # noqa: E402
from robodiff.cli import script_main  # noqa: E402
from robodiff.data import ReplayBuffer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
TWO = ("front", "side")


@pytest.fixture
def pytest_signals():
    """record/deploy make SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt (real_robot.safety); put pytest's back."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in sigs}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _differ(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_camera_flag_names_the_twin_cameras():
    assert camera_list("front,side") == TWO and camera_list("side") == ("side",)
    for bad in ("front,top", "front,front", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="front, side"):
            camera_list(bad)


def test_twin_renders_each_camera_into_its_own_ring():
    with TwinProcess(cameras=TWO) as twin:
        cams = {c: RingCamera(twin.camera_ring(c), twin.image_hw) for c in TWO}
        try:
            for cam in cams.values():
                cam.wait_first_frame(timeout=30)
                assert cam.wait_new_frame(cam.frame_count, timeout=10)  # and keeps rendering
            frames = {c: cam.get(1)["color"][0] for c, cam in cams.items()}
        finally:
            for cam in cams.values():
                cam.close()
    assert frames["front"].shape == frames["side"].shape == (96, 96, 3)
    assert _differ(frames["front"], frames["side"]) > 5  # two views of the scene, not one picture twice


def test_record_sim_with_two_cameras_stores_every_camera(tmp_path, pytest_signals):
    import imageio.v3 as iio

    out = tmp_path / "demo.zarr"
    rc = script_main("real_robot.record", ["--sim", "--cameras", "front,side", "--teleop", "scripted",
                                           "--episodes", "1", "--duration", "2", "--output", str(out)])
    assert rc == 0
    ep = ReplayBuffer.open(out).get_episode(0)
    T = len(ep["timestamp"])
    assert T >= 10
    assert ep["img"].shape == ep["img_side"].shape == (T, 96, 96, 3) and ep["img_side"].dtype == np.uint8
    assert _differ(ep["img"][-1], ep["img_side"][-1]) > 5
    assert iio.improps(tmp_path / "demo_videos" / "episode_0000.mp4", plugin="pyav").shape[1:] == (96, 192, 3)


def _two_camera_episode(T, seed):
    """A station recording with two cameras, as record --cameras front,side writes it."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([-0.2, -0.62], [0.2, -0.22], size=(T, 2)).astype(np.float32)
    return {"timestamp": np.arange(T, dtype=np.float64) * 0.1,
            "img": rng.integers(0, 256, size=(T, 96, 96, 3), dtype=np.uint8),
            "img_side": rng.integers(0, 256, size=(T, 96, 96, 3), dtype=np.uint8),
            "agent_pos": xy, "action": xy + 0.01}


def test_deploy_sim_feeds_a_two_camera_policy_both_images(tmp_path, one_thread, pytest_signals, capsys):
    from policies.loading import load_policy
    from policies.train import train_policy

    data = tmp_path / "ur2.zarr"
    rb = ReplayBuffer.create(data)
    for i in range(2):
        rb.add_episode(_two_camera_episode(24, i))
    result = train_policy([
        "task=ur_pusht_image_2cam", "policy=unet_image_small", f"task.dataset.path={data}",
        f"output_dir={tmp_path / 'run'}", "training.max_steps=1", "training.batch_size=4", "training.progress=false",
        "policy.unet.down_dims=[16,32]", "policy.obs_encoder.feature_dim=8", "policy.obs_encoder.num_keypoints=4",
        "training.val_every=1000", "logging.tensorboard=false"])
    ckpt = str(result.latest_checkpoint)
    policy, _ = load_policy(ckpt, "cpu")
    assert set(policy.obs_encoder.image_encoders) == {"image", "image_side"}  # one encoder per camera

    # a twin without the side camera: refused before anything starts, naming the observation and the flag
    args = [ckpt, "--sim", "--episodes", "1", "--duration", "2", "--sampler", "ddim", "--steps", "2"]
    assert script_main("real_robot.deploy", [*args, "--cameras", "front", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'image_side'" in err and "--cameras front,side" in err

    out = tmp_path / "deploy"
    assert script_main("real_robot.deploy", [*args, "--output", str(out)]) == 0  # cameras from the checkpoint
    (episode,) = json.loads((out / "metrics.json").read_text())["episodes"]
    assert episode["chunks"] >= 1 and episode["actions_sent"] >= 1  # the policy ran on both images
    recorded = ReplayBuffer.open(out / "episodes.zarr").get_episode(0)
    assert recorded["img"].shape == recorded["img_side"].shape == (episode["steps"], 96, 96, 3)
