"""`robodiff data view` / `data stats`: a small buffer rendered to an mp4 and a PNG, checked frame by frame."""

import imageio.v3 as iio
import numpy as np

from robodiff.cli import main
from robodiff.data import ReplayBuffer
from robodiff.data.lerobot import write_lerobot
from robodiff.data.viewer import render_episode


def buffer(path):
    rng = np.random.default_rng(0)
    eps = []
    for T in (12, 20):
        t = np.arange(T)
        img = np.zeros((T, 32, 32, 3), np.uint8)
        for i in t:  # a white square moving right: each frame is different and not blank
            img[i, 8:20, i:i + 12] = 255
        eps.append({"img": img, "wrist": np.full((T, 24, 40, 3), 90, np.uint8),
                    "state": np.stack([np.sin(t / 3), np.cos(t / 3), t / T], 1).astype(np.float32),
                    "action": rng.uniform(0, 512, (T, 2)).astype(np.float32)})
    ReplayBuffer.from_dict(eps).save(path)
    return path


def test_view_renders_every_step_with_a_moving_marker(tmp_path):
    src = buffer(tmp_path / "rb.zarr")
    out = render_episode(src, 1, tmp_path / "ep.mp4")
    assert out.cameras == ["img", "wrist"] and out.traces == ["action", "state"] and out.n_frames == 20
    frames = iio.imread(tmp_path / "ep.mp4", plugin="pyav")
    assert frames.shape == (20, out.height, out.width, 3)
    assert out.height > 240 + 2 * 100 and out.width >= 480
    assert all(f.std() > 20 for f in frames)  # not blank
    cam, strip = frames[:, :240], frames[:, 240:]
    # the camera row shows the moving square: its bright columns shift right over the episode
    cols = [np.flatnonzero(f[..., 0].max(0) > 200).mean() for f in cam]
    assert cols[-1] > cols[0] + 50
    # the step marker (red) moves right along the trace strip
    f = strip.astype(int)
    is_red = (f[..., 0] > 150) & (f[..., 0] - f[..., 1] > 60) & (f[..., 0] - f[..., 2] > 60)
    red = [np.flatnonzero(m.sum(0) > 20).mean() for m in is_red]
    assert np.all(np.diff(red) > 0)


def test_view_cli_on_lerobot_source_uses_its_fps(tmp_path, capsys):
    rb = ReplayBuffer.open(buffer(tmp_path / "rb.zarr"))
    write_lerobot(rb, tmp_path / "lr", fps=5, task="move")
    assert main(["data", "view", str(tmp_path / "lr"), "--episode", "-1", "--out", str(tmp_path / "v.mp4"), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "episode -1, 20 frames" in printed and "at 5 fps" in printed
    meta = iio.immeta(tmp_path / "v.mp4", plugin="pyav")
    assert round(meta["fps"]) == 5
    assert len(iio.imread(tmp_path / "v.mp4", plugin="pyav")) == 20
    assert main(["data", "view", str(tmp_path / "lr"), "--episode", "7", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "--episode 0..1" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()


def test_stats_png_is_not_blank(tmp_path, capsys):
    src = buffer(tmp_path / "rb.zarr")
    assert main(["data", "stats", str(src), "--out", str(tmp_path / "stats.png")]) == 0
    assert f"wrote {tmp_path / 'stats.png'}" in capsys.readouterr().out
    img = iio.imread(tmp_path / "stats.png")
    assert img.shape[0] > 300 and img.shape[1] > 1000
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 20 and len(np.unique(rgb // 32, axis=0)) > 5  # plots in several colours, not a blank page
    assert not list(tmp_path.glob(".*tmp*"))
