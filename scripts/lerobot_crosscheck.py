#!/usr/bin/env python
"""Check robodiff's LeRobot v3.0 files against the real ``lerobot`` package, in both directions.

``lerobot`` is not a robodiff dependency (it pins Python/torch versions robodiff does not), so the two halves
run in different environments and meet in .npz files:

    # robodiff's env: export the reference data, dump a slice of it for lerobot to write
    python scripts/bench_lerobot.py --work W                       # writes W/pusht_h264 (robodiff's export)
    python scripts/lerobot_crosscheck.py dump REFERENCE.zarr W/slice.npz --episodes 20
    # lerobot's env (python -m venv V && V/bin/pip install lerobot==0.4.4): it needs only numpy + lerobot
    V/bin/python scripts/lerobot_crosscheck.py lerobot-read W/pusht_h264 W/lerobot_read.npz --episodes 20
    V/bin/python scripts/lerobot_crosscheck.py lerobot-write W/slice.npz W/lerobot_written
    # robodiff's env again: compare
    python scripts/lerobot_crosscheck.py compare W

``lerobot-read`` loads robodiff's export with ``LeRobotDataset`` and saves what it returns for the first
episodes (every frame, decoded by lerobot); ``lerobot-write`` records the slice with lerobot's own writer
(``LeRobotDataset.create`` / ``add_frame`` / ``save_episode``, its default AV1 encoder); ``compare`` imports
both with robodiff and prints one JSON object of the differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TASK = "Push the T-shaped block onto the T-shaped target."


def dump(args) -> None:
    from robodiff.data import ReplayBuffer

    rb = ReplayBuffer.open(args.src)
    end = int(rb.episode_ends[args.episodes - 1])
    arrays = {k: np.asarray(rb[k][:end]) for k in rb.keys()}
    arrays["img"] = np.clip(np.rint(arrays["img"]), 0, 255).astype(np.uint8)
    np.savez(args.out, episode_ends=rb.episode_ends[: args.episodes], **arrays)


def lerobot_read(args) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("robodiff/export", root=args.root, video_backend="pyav")
    eps = ds.meta.episodes
    end = int(eps[args.episodes - 1]["dataset_to_index"])
    items = [ds[i] for i in range(end)]
    out = {"task": np.array([it["task"] for it in items]), "fps": np.array(ds.fps),
           "total_frames": np.array(ds.meta.total_frames), "total_episodes": np.array(ds.meta.total_episodes)}
    for k in items[0]:
        if k != "task":
            out[k] = np.stack([it[k].numpy() for it in items])
    # lerobot returns video frames as float CHW in [0, 1]; store them as uint8 HWC for the comparison
    for k in ds.meta.video_keys:
        out[k] = np.clip(np.rint(out[k] * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    np.savez(args.out, **out)
    print(f"lerobot read {end} frames of {args.episodes} episodes: keys {sorted(out)}")


def lerobot_write(args) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    d = np.load(args.src)
    features = {
        "observation.image": {"dtype": "video", "shape": (96, 96, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (5,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
    }
    ds = LeRobotDataset.create("robodiff/crosscheck", fps=10, features=features, root=args.out, use_videos=True)
    start = 0
    for end in d["episode_ends"]:
        for t in range(start, int(end)):
            ds.add_frame({"observation.image": d["img"][t], "observation.state": d["state"][t],
                          "action": d["action"][t], "task": TASK})
        ds.save_episode()
        start = int(end)
    ds.finalize()
    print(f"lerobot wrote {start} frames of {len(d['episode_ends'])} episodes to {args.out} (vcodec {ds.vcodec})")


def compare(args) -> None:
    from robodiff.data import ReplayBuffer
    from robodiff.data.lerobot import read_lerobot

    w = args.work
    result = {}
    # 1. lerobot reading robodiff's export vs robodiff reading it back
    lr = np.load(w / "lerobot_read.npz")
    back = ReplayBuffer.open(w / "pusht_h264_back.zarr")
    n = len(lr["index"])
    ref = np.load(w / "slice.npz")
    diff = np.abs(lr["observation.images.img"].astype(int) - np.asarray(back["img"][:n]).astype(int))
    result["lerobot_reads_robodiff_export"] = {
        "frames": n, "total_frames": int(lr["total_frames"]), "total_episodes": int(lr["total_episodes"]),
        "fps": int(lr["fps"]), "tasks": sorted(set(lr["task"].tolist())),
        "state_exact": bool(np.array_equal(lr["observation.state"], ref["state"][:n])),
        "action_exact": bool(np.array_equal(lr["action"], ref["action"][:n])),
        "keypoint_exact": bool(np.array_equal(lr["keypoint"], ref["keypoint"][:n])),
        "episode_index_matches": bool(np.array_equal(lr["episode_index"], np.repeat(
            np.arange(len(ref["episode_ends"])), np.diff(ref["episode_ends"], prepend=0))[:n])),
        "frames_identical_to_robodiff_import": float((diff == 0).all(axis=(1, 2, 3)).mean()),
        "max_abs_pixel_diff_vs_robodiff_import": int(diff.max()),
        "mae_vs_original": float(np.abs(lr["observation.images.img"].astype(float) - ref["img"][:n]).mean()),
    }
    # 2. robodiff reading a dataset lerobot wrote
    rb = read_lerobot(w / "lerobot_written")
    x = rb["image"].astype(np.float64)
    y = ref["img"].astype(np.float64)
    mse = float(((x - y) ** 2).mean())
    result["robodiff_reads_lerobot_written"] = {
        "frames": rb.n_steps, "episodes": rb.n_episodes,
        "episode_ends_equal": bool(np.array_equal(rb.episode_ends, ref["episode_ends"])),
        "state_exact": bool(np.array_equal(rb["state"], ref["state"])),
        "action_exact": bool(np.array_equal(rb["action"], ref["action"])),
        "fps": rb.attrs["lerobot"]["fps"], "tasks": rb.attrs["lerobot"]["tasks"],
        "video_codec": json.loads((w / "lerobot_written/meta/info.json").read_text())
        ["features"]["observation.image"]["info"]["video.codec"],
        "image_mae_0_255": round(float(np.abs(x - y).mean()), 3),
        "image_psnr_db": round(float(10 * np.log10(255 ** 2 / mse)), 2),
    }
    print(json.dumps(result, indent=2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("dump")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--episodes", type=int, default=20)
    p.set_defaults(func=dump)
    p = sub.add_parser("lerobot-read")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--episodes", type=int, default=20)
    p.set_defaults(func=lerobot_read)
    p = sub.add_parser("lerobot-write")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.set_defaults(func=lerobot_write)
    p = sub.add_parser("compare")
    p.add_argument("work", type=Path)
    p.set_defaults(func=compare)
    args = ap.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
