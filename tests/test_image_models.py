"""Image models through the shared loss, sampler and trainer, on toy images that train in seconds."""

import numpy as np
import pytest
import torch

from robodiff.image.captions import CaptionTokenizer, cell_centre, cell_phrase, digit_caption, grid_cell, pusht_caption
from robodiff.image.data import ImageDataset, make_image_dataset
from robodiff.image.models import build_image_model
from robodiff.image.quality import t_cell
from robodiff.image.train import image_config
from robodiff.training import load_model, train


def patterns() -> np.ndarray:
    """Two 8x8 uint8 images: a ring ("zero") and a vertical bar ("one")."""
    ring = np.zeros((8, 8), np.uint8)
    ring[1:7, 1:7] = 255
    ring[3:5, 3:5] = 0
    bar = np.zeros((8, 8), np.uint8)
    bar[:, 3:5] = 255
    return np.stack([ring, bar])[:, None]


def toy_dataset(copies: int = 16) -> ImageDataset:
    images = np.repeat(patterns(), copies, axis=0)  # (2 * copies, 1, 8, 8), alternating blocks of each label
    labels = np.repeat(np.array([0, 1]), copies)
    return ImageDataset(images, labels, [digit_caption(y) for y in labels])


def toy_config(tmp_path, conditioning: str, steps: int, **model) -> dict:
    return image_config({
        "output_dir": str(tmp_path / conditioning), "device": "cpu",
        "data": {"name": "digits", "size": 8, "channels": 1},
        "model": {"conditioning": conditioning, "channels": [16, 32], "attention": [False, True],
                  "text": {"width": 32, "layers": 1, "heads": 2}, **model},
        "diffusion": {"num_train_timesteps": 100, "prediction_type": "sample"},  # x0 targets: memorised fast
        "training": {"max_steps": steps, "batch_size": 16, "lr": 3e-3, "lr_warmup_steps": 10, "progress": False,
                     "val_every": 1000, "checkpoint": {"every": 1000, "every_steps": None}},
    })


def nearest_pattern(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the nearest toy pattern, its mean squared distance) per image in [-1, 1]."""
    ref = torch.from_numpy(patterns()).float() / 127.5 - 1
    d = ((images[:, None] - ref[None]) ** 2).flatten(2).mean(-1)  # (N, 2)
    return d.argmin(1), d.min(1).values


@pytest.mark.slow
@pytest.mark.parametrize("conditioning", ["class", "caption"])
def test_tiny_model_overfits_and_its_condition_picks_the_image(tmp_path, one_thread, conditioning):
    """Trained by the one trainer (diffusion_loss) and sampled by the one loop (sample): a label / a caption
    yields the training image it names, reloaded from the checkpoint alone."""
    res = train(toy_config(tmp_path, conditioning, 150), build_image_model, toy_dataset())
    model, _ = load_model(res.latest_checkpoint, build_image_model)
    want = torch.tensor([0, 1] * 4)
    g = torch.Generator().manual_seed(0)
    if conditioning == "class":
        x = model.generate(8, labels=want, sampler="ddim", steps=10, guidance=2.0, generator=g)
    else:
        captions = ["a handwritten zero", "a handwritten one"] * 4
        x = model.generate(8, captions=captions, sampler="ddim", steps=10, guidance=2.0, generator=g)
    which, dist = nearest_pattern(x)
    assert torch.equal(which, want), which
    # close to the pattern it names, not just nearer to it: the two patterns are 2.0 apart
    assert float(dist.max()) < 0.1, dist


def test_unconditional_and_conditional_sampling_refuse_a_missing_condition(tmp_path):
    model = build_image_model(toy_config(tmp_path, "class", 1), None)
    with pytest.raises(ValueError, match="labels"):
        model.generate(2, steps=2)
    cap = build_image_model(toy_config(tmp_path, "caption", 1), None)
    with pytest.raises(ValueError, match="captions"):
        cap.generate(2, steps=2)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        cap.generate(2, captions=["a handwritten elephant"], steps=2)


@pytest.mark.slow
def test_vae_round_trips_within_stated_error(tmp_path, one_thread):
    """A small AutoencoderKL (8x8x1 -> 4x4x2 latents) trained 300 steps on 64 digits reconstructs them with
    mean squared error below 0.02 (images in [-1, 1]; a blank image scores ~0.5)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images[:64, None] / 16 * 255).round().astype(np.uint8)
    data = ImageDataset(images, d.target[:64], [digit_caption(y) for y in d.target[:64]])
    cfg = image_config({
        "output_dir": str(tmp_path / "vae"), "device": "cpu", "data": {"name": "digits", "size": 8},
        "model": {"kind": "vae", "vae": {"channels": [16, 32], "latent_channels": 2}},
        "training": {"max_steps": 300, "batch_size": 16, "lr": 3e-3, "lr_warmup_steps": 10, "progress": False,
                     "val_every": 1000, "checkpoint": {"every": 1000, "every_steps": None}}})
    res = train(cfg, build_image_model, data)
    vae, _ = load_model(res.latest_checkpoint, build_image_model)
    x = data.__getitems__(range(64))["image"]
    mse = float(((vae.reconstruct(x) - x) ** 2).mean())
    assert mse < 0.02, mse


def test_digits_dataset_is_offline_8bit_with_captions():
    ds = make_image_dataset({"name": "digits", "size": 16})
    val = ds.get_validation_dataset()
    assert len(ds) + len(val) == 1797 and len(val) == 359
    b = ds.__getitems__([0, 1])
    assert b["image"].shape == (2, 1, 16, 16) and b["image"].min() >= -1 and b["image"].max() <= 1
    levels = (b["image"] + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # 8-bit levels: what bits/dim is defined on
    assert ds.captions[0] == digit_caption(int(b["label"][0]))
    tokens = CaptionTokenizer()([ds.captions[0]])
    assert torch.equal(b["tokens"][0], tokens[0])


def test_pusht_captions_say_where_the_t_is_and_how_it_is_turned():
    assert pusht_caption(80, 90, 0.0) == "the T is at the top left, upright"
    assert pusht_caption(256, 256, np.pi / 2) == "the T is in the centre, turned 90 degrees clockwise"
    assert pusht_caption(450, 480, -np.pi / 4) == "the T is at the bottom right, turned 45 degrees anticlockwise"
    assert pusht_caption(256, 40, np.pi) == "the T is at the top centre, upside down"


def test_pusht_frames_load_with_captions(pusht_zarr):
    ds = make_image_dataset({"name": str(pusht_zarr), "size": 32, "frame_stride": 500, "val_fraction": 0.1})
    b = ds.__getitems__([0])
    assert b["image"].shape == (1, 3, 32, 32) and int(b["label"][0]) == -1
    assert all(c.startswith("the T is ") for c in ds.captions)
    assert len(set(ds.captions)) > 5  # positions and angles vary over the demonstrations


def test_grid_cells_name_the_caption_positions():
    assert grid_cell(np.array([0.0, 256, 511.9, 600]), np.array([0.0, 256, 300, -5])).tolist() == [0, 4, 5, 2]
    assert [pusht_caption(*cell_centre(c), 0.0) for c in (0, 4, 8)] == [
        "the T is at the top left, upright", "the T is in the centre, upright", "the T is at the bottom right, upright"]
    assert [cell_phrase(c) for c in (1, 4, 6)] == ["at the top centre", "in the centre", "at the bottom left"]


def test_pose_estimate_finds_the_t_where_real_frames_captions_say(pusht_zarr):
    """The colour rule that scores Push-T samples, checked on real frames against their captions (from state)."""
    ds = make_image_dataset({"name": str(pusht_zarr), "size": 32, "frame_stride": 50, "val_fraction": 0.0})
    cells = t_cell(ds.__getitems__(range(len(ds)))["image"])
    agree = np.mean([f"the T is {cell_phrase(int(c))}," in caption for c, caption in zip(cells, ds.captions)])
    assert len(ds) > 400 and agree > 0.85  # misses lie on cell borders; 1/9 would be chance
