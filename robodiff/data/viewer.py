"""Looking at demonstrations: an episode as a video (cameras over state/action traces) and a dataset's statistics.

Both read any source ``robodiff data convert`` reads (zarr, .zip, robomimic HDF5, LeRobot v3.0). The video's
trace strip is drawn by matplotlib once per episode; each frame then only gets the current-step marker, drawn
at the pixel column matplotlib's own transform gives for that step, so rendering costs one plot, not one per
frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robodiff.data.replay_buffer import ReplayBuffer, ReplayBufferError

CAMERA_HEIGHT = 240  # cameras are scaled (nearest neighbour, integer factor) to about this many pixels high
STRIP_HEIGHT_PER_KEY = 110
MARKER_RGB = (220, 30, 30)


@dataclass
class Rendered:
    path: Path
    n_frames: int
    width: int
    height: int
    fps: int
    cameras: list[str]
    traces: list[str]


def _open(path: Path, key_map=None, episode: int | None = None, videos: bool = True) -> tuple[ReplayBuffer, int]:
    """(replay buffer of ``path``, index of ``episode`` in it). For a LeRobot dataset only what is shown is
    decoded (just that episode, or no videos), so looking at one episode of a large dataset stays cheap."""
    from robodiff.data.convert import detect_format, open_any
    from robodiff.data.lerobot import LeRobotReader

    path = Path(path)
    if detect_format(path) != "lerobot":
        return open_any(path, key_map), episode
    reader = LeRobotReader(path, key_map)
    chosen = None
    if episode is not None:
        if not -reader.n_episodes <= episode < reader.n_episodes:
            raise ReplayBufferError(f"{path}: episode {episode} out of range: the dataset has {reader.n_episodes} "
                                    f"episodes; pass --episode 0..{reader.n_episodes - 1}")
        chosen = [episode % reader.n_episodes]
    rb = ReplayBuffer.from_dict(ep for ep, _ in reader.iter_episodes(chosen, videos=videos))
    rb.attrs.update(reader.attrs([]))
    return rb, 0 if chosen else episode


def _split_keys(rb: ReplayBuffer) -> tuple[list[str], list[str]]:
    cams = [k for k in rb.keys() if rb[k].ndim == 4]
    lowdim = [k for k in rb.keys() if rb[k].ndim in (2, 3) or (rb[k].ndim == 1 and rb[k].dtype.kind == "f")]
    return cams, lowdim


def _fps(rb: ReplayBuffer, fps: int | None) -> int:
    return int(fps or (rb.attrs.get("lerobot") or {}).get("fps") or 10)


def _camera_row(frames: dict[str, np.ndarray], t: int) -> np.ndarray:
    """Frame t of every camera, scaled to ~CAMERA_HEIGHT and placed side by side (RGB uint8)."""
    tiles = []
    for img in frames.values():
        im = np.asarray(img[t])
        if im.dtype != np.uint8:
            im = np.clip(np.rint(im), 0, 255).astype(np.uint8)
        if im.shape[-1] == 1:
            im = np.repeat(im, 3, axis=-1)
        s = max(1, CAMERA_HEIGHT // im.shape[0])
        tiles.append(im.repeat(s, 0).repeat(s, 1))
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 4), (0, 0))) for t in tiles]
    return np.concatenate(tiles, axis=1)[:, :-4]


def _trace_strip(ep: dict[str, np.ndarray], keys: list[str], width: int, n: int):
    """The traces as an RGB image plus, per step, the pixel column of that step on the time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig, axes = plt.subplots(len(keys), 1, figsize=(width / dpi, STRIP_HEIGHT_PER_KEY * len(keys) / dpi), dpi=dpi,
                             sharex=True, squeeze=False)
    steps = np.arange(n)
    for ax, k in zip(axes[:, 0], keys):
        x = np.asarray(ep[k], np.float64).reshape(n, -1)
        for d in range(x.shape[1]):
            ax.plot(steps, x[:, d], lw=1, label=f"{d}" if x.shape[1] <= 10 else None)
        ax.set_ylabel(k, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.margins(x=0)
        if x.shape[1] <= 10:
            ax.legend(fontsize=6, ncol=min(x.shape[1], 10), loc="upper right", frameon=False, handlelength=1)
    axes[-1, 0].set_xlabel("step", fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.canvas.draw()
    strip = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    ax0 = axes[-1, 0]
    cols = ax0.transData.transform(np.stack([steps, np.zeros(n)], 1))[:, 0]
    top = int(round(strip.shape[0] - axes[0, 0].get_window_extent().y1))
    bottom = int(round(strip.shape[0] - ax0.get_window_extent().y0))
    plt.close(fig)
    return strip, np.clip(np.rint(cols).astype(int), 1, strip.shape[1] - 2), (top, bottom)


def render_episode(path: Path, episode: int, out: Path, keys: list[str] | None = None, fps: int | None = None,
                   key_map=None, progress: bool = False) -> Rendered:
    """Write episode ``episode`` of ``path`` as an H.264 mp4 at ``out`` (temporary name, renamed at the end)."""
    import imageio.v3 as iio

    rb, index = _open(path, key_map, episode=episode)
    cams, lowdim = _split_keys(rb)
    if keys:
        unknown = [k for k in keys if k not in lowdim]
        if unknown:
            raise ReplayBufferError(f"{path} has no low-dim key {unknown}; plottable keys: {lowdim}")
        lowdim = list(keys)
    if not cams and not lowdim:
        raise ReplayBufferError(f"{path}: nothing to show (keys {rb.keys()})")
    try:
        ep = rb.get_episode(index, cams + lowdim)
    except IndexError as exc:
        raise ReplayBufferError(f"{path}: {exc}; pass --episode 0..{rb.n_episodes - 1}") from exc
    n = len(next(iter(ep.values())))
    row = _camera_row({k: ep[k] for k in cams}, 0) if cams else None
    width = row.shape[1] if row is not None else 640
    width = max(width, 480) + (max(width, 480) % 2)
    strip, cols, (top, bottom) = _trace_strip(ep, lowdim, width, n) if lowdim else (None, None, None)
    frames = []
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="render", unit="frame")
    for t in it:
        parts = []
        if cams:
            r = _camera_row({k: ep[k] for k in cams}, t)
            pad = width - r.shape[1]
            parts.append(np.pad(r, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=255))
        if strip is not None:
            s = strip.copy()
            s[top:bottom, cols[t] - 1:cols[t] + 2] = MARKER_RGB
            s = s[:, :width]
            parts.append(np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255))
        frame = np.concatenate(parts, axis=0)
        if frame.shape[0] % 2:
            frame = np.pad(frame, ((0, 1), (0, 0), (0, 0)), constant_values=255)
        frames.append(frame)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix or '.mp4'}")
    rate = _fps(rb, fps)
    try:
        iio.imwrite(tmp, np.stack(frames), plugin="pyav", codec="libx264", fps=rate)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return Rendered(out, n, frames[0].shape[1], frames[0].shape[0], rate, cams, lowdim)


def plot_stats(path: Path, out: Path, key_map=None) -> Path:
    """One PNG: episode lengths, a histogram per dimension of every low-dim key, and the action xy paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rb, _ = _open(path, key_map, videos=False)
    if rb.n_episodes == 0:
        raise ReplayBufferError(f"{path} has no episodes")
    _, lowdim = _split_keys(rb)
    lowdim = (["action"] if "action" in lowdim else []) + [k for k in lowdim if k != "action"]
    hist_rows = [(k, d) for k in lowdim for d in range(int(np.prod(rb[k].shape[1:], dtype=np.int64)))]
    max_hists = 40
    if len(hist_rows) > max_hists:  # very wide keys: the first dimensions of each key, evenly shared
        per = max(1, max_hists // len(lowdim))
        hist_rows = [(k, d) for k, d in hist_rows if d < per]
    ncols = 6
    nrows = 1 + -(-len(hist_rows) // ncols)
    fig = plt.figure(figsize=(3 * ncols, 2.4 * (nrows + 1)), dpi=80)
    gs = fig.add_gridspec(nrows, ncols, height_ratios=[2] + [1] * (nrows - 1))
    lengths = rb.episode_lengths
    ax = fig.add_subplot(gs[0, :4])
    ax.bar(np.arange(len(lengths)), lengths, width=1.0, color="tab:blue")
    ax.set_title(f"episode lengths ({rb.n_episodes} episodes, {rb.n_steps} steps; "
                 f"min {lengths.min()}, mean {lengths.mean():.1f}, max {lengths.max()})", fontsize=9)
    ax.set_xlabel("episode", fontsize=8)
    ax = fig.add_subplot(gs[0, 4:])
    if "action" in rb.keys() and rb["action"].ndim == 2 and rb["action"].shape[1] >= 2:
        act = np.asarray(rb["action"][:], np.float64)
        ends = rb.episode_ends
        cmap = plt.get_cmap("viridis")
        for i, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
            ax.plot(act[a:b, 0], act[a:b, 1], lw=0.5, alpha=0.5, color=cmap(i / max(1, len(ends) - 1)))
        ax.set_aspect("equal", adjustable="box")
        ax.set_title("action[:, :2] paths (colour = episode)", fontsize=9)
    else:
        ax.axis("off")
        ax.set_title("no 2-D action to draw", fontsize=9)
    cache = {}
    for i, (k, d) in enumerate(hist_rows):
        if k not in cache:
            cache[k] = np.asarray(rb[k][:], np.float64).reshape(rb.n_steps, -1)
        ax = fig.add_subplot(gs[1 + i // ncols, i % ncols])
        ax.hist(cache[k][:, d], bins=50, color="tab:orange" if k == "action" else "tab:green")
        ax.set_title(f"{k}[{d}]", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    try:
        fig.savefig(tmp)
        tmp.replace(out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out
