"""Station recordings train as recorded: task=ur_pusht_image on a buffer in the station's layout (img,
agent_pos, action in metres, ...), units travel into the checkpoint, and the deploy script reads them."""

import numpy as np
import pytest

from robodiff.data import ReplayBuffer


def _station_episode(T, seed):
    """What PushTStation.end_episode writes (twin or real arm, without --pusht-format)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([-0.2, -0.62], [0.2, -0.22], size=(T, 2)).astype(np.float32)
    return {
        "timestamp": np.arange(T, dtype=np.float64) * 0.1,
        "img": rng.integers(0, 256, size=(T, 96, 96, 3), dtype=np.uint8),
        "agent_pos": xy,
        "action": xy + 0.01,
        "robot_eef_pose": rng.normal(size=(T, 6)).astype(np.float32),
        "robot_joint": rng.normal(size=(T, 6)).astype(np.float32),
    }


@pytest.fixture
def station_buffer(tmp_path):
    rb = ReplayBuffer.create(tmp_path / "ur.zarr")
    for i, T in enumerate([30, 25, 28]):
        rb.add_episode(_station_episode(T, i))
    return tmp_path / "ur.zarr"


@pytest.mark.slow
def test_ur_pusht_image_trains_on_station_recordings_and_keeps_units(tmp_path, station_buffer, one_thread):
    from policies.train import train_policy
    from real_robot.deploy import action_units
    from robodiff.training.checkpoint import load_checkpoint

    result = train_policy([
        "task=ur_pusht_image", "policy=unet_image_small", f"task.dataset.path={station_buffer}",
        f"output_dir={tmp_path / 'run'}", "training.max_steps=2", "training.batch_size=8", "training.progress=false",
        "policy.unet.down_dims=[16,32]", "policy.obs_encoder.feature_dim=8", "policy.obs_encoder.num_keypoints=4",
        "training.val_every=1000", "logging.tensorboard=false"])
    assert result.step == 2
    ckpt = load_checkpoint(result.latest_checkpoint)
    task = ckpt["config"]["task"]
    assert task["shape_meta"]["action"]["units"] == "m" and task["shape_meta"]["obs"]["agent_pos"]["units"] == "m"
    assert action_units(task) == "m"
    # checkpoints from before shape_meta carried units: Push-T tasks are pixels, others metres
    assert action_units({"name": "pusht_lowdim", "shape_meta": {"action": {"shape": [2]}}}) == "px"
    with pytest.raises(ValueError, match="units is 'mm'"):
        action_units({"name": "x", "shape_meta": {"action": {"shape": [2], "units": "mm"}}})
