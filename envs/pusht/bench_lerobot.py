"""Round trip the reference Push-T store through LeRobotDataset v3.0 and measure it.

    nice -n 10 robodiff bench lerobot [--zarr PATH] [--work DIR] [--vcodec h264 --crf 23]
    (or python scripts/bench_lerobot.py ...)

Replay buffer (uint8 images in memory) -> LeRobot directory -> zarr replay buffer, timed both ways (frames/s,
and as a ratio to saving the same buffer as zarr in the same run, since the box is shared), then: every low-dim
array compared exactly, image error (MAE in 0-255 and PSNR over all frames, worst frame),
episode boundaries, fps and task strings, and the normalizer statistics of a PushTDataset built on the
imported copy against one built on the original. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

REFERENCE = Path("../shared/data/pusht/pusht_cchi_v7_replay.zarr")  # relative to the working directory, as in the task configs
TASK = "Push the T-shaped block onto the T-shaped target."


def psnr(mse: float) -> float:
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def add_arguments(ap) -> None:
    ap.add_argument("--zarr", type=Path, default=REFERENCE)
    ap.add_argument("--work", type=Path, default=Path("/tmp/robodiff_bench_lerobot"))
    ap.add_argument("--vcodec", default="h264", choices=["h264", "av1"])
    ap.add_argument("--crf", type=int, default=None)
    ap.add_argument("--pix-fmt", default="yuv420p", choices=["yuv420p", "yuv444p"])


def run(args) -> int:
    import torch

    torch.set_num_threads(1)
    from envs.pusht.dataset import PushTDataset
    from robodiff.data import ReplayBuffer
    from robodiff.data.lerobot import read_lerobot, write_lerobot

    args.work.mkdir(parents=True, exist_ok=True)
    lr_dir, back_dir = args.work / f"pusht_{args.vcodec}", args.work / f"pusht_{args.vcodec}_back.zarr"
    for p in (lr_dir, back_dir):
        shutil.rmtree(p, ignore_errors=True)
    src = ReplayBuffer.open(args.zarr)
    rb = src.copy_to_memory(dtypes={"img": np.uint8})  # the reference stores float32 0-255 images
    n = rb.n_steps

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()  # same-run yardstick: writing the same buffer as a zarr replay buffer
    rb.save(args.work / "baseline.zarr", overwrite=True)
    t_zarr = time.perf_counter() - t0
    shutil.rmtree(args.work / "baseline.zarr")
    t0 = time.perf_counter()
    write_lerobot(rb, lr_dir, task=TASK, fps=10, vcodec=args.vcodec, crf=args.crf, pix_fmt=args.pix_fmt)
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = read_lerobot(lr_dir, dst=back_dir)
    t_import = time.perf_counter() - t0

    lowdim = {}
    for k in rb.keys():
        if k == "img":
            continue
        a, b = rb[k], np.asarray(back[k][:])
        lowdim[k] = {"exact": bool(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)),
                     "dtype": str(b.dtype), "shape": list(b.shape)}
    err_sum = sq_sum = 0.0
    worst = (float("inf"), -1)
    for a in range(0, n, 2048):
        x = rb["img"][a:a + 2048].astype(np.float64)
        y = np.asarray(back["img"][a:a + 2048]).astype(np.float64)
        d = x - y
        err_sum += np.abs(d).sum()
        sq_sum += (d ** 2).sum()
        per_frame = (d ** 2).reshape(len(d), -1).mean(1)
        i = int(per_frame.argmax())
        if psnr(per_frame[i]) < worst[0]:
            worst = (psnr(per_frame[i]), a + i)
    n_px = rb["img"].size
    meta = back.attrs["lerobot"]

    def normalizer(source, obs_type):
        ds = PushTDataset(source, obs_type=obs_type)
        return ds, {k: v.detach().numpy() for k, v in ds.get_normalizer().state_dict().items()}

    norm = {}
    for obs_type in ("lowdim", "image"):
        ds_a, na = normalizer(args.zarr, obs_type)
        ds_b, nb = normalizer(back_dir, obs_type)
        ba, bb = ds_a[len(ds_a) // 2], ds_b[len(ds_b) // 2]
        norm[obs_type] = {
            "normalizer_equal": sorted(na) == sorted(nb) and all(np.array_equal(na[k], nb[k]) for k in na),
            "n_windows": [len(ds_a), len(ds_b)],
            "sample_shapes_equal": all(ba["obs"][k].shape == bb["obs"][k].shape for k in ba["obs"])
                                   and ba["action"].shape == bb["action"].shape,
        }
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # noqa: E731
    result = {
        "source": str(args.zarr), "frames": n, "episodes": rb.n_episodes,
        "vcodec": args.vcodec, "crf": args.crf, "pix_fmt": args.pix_fmt,
        "export_s": round(t_export, 2), "export_frames_per_s": round(n / t_export),
        "import_s": round(t_import, 2), "import_frames_per_s": round(n / t_import),
        "zarr_save_s": round(t_zarr, 2), "export_vs_zarr_save": round(t_export / t_zarr, 2),
        "import_vs_zarr_save": round(t_import / t_zarr, 2),
        "loadavg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "lerobot_dir_mb": round(size(lr_dir) / 2 ** 20, 2), "video_mb": round(size(lr_dir / "videos") / 2 ** 20, 2),
        "lowdim": lowdim,
        "image_mae_0_255": round(err_sum / n_px, 3), "image_psnr_db": round(psnr(sq_sum / n_px), 2),
        "worst_frame_psnr_db": round(worst[0], 2), "worst_frame": worst[1],
        "episode_ends_equal": bool(np.array_equal(back.episode_ends, rb.episode_ends)),
        "fps": meta["fps"], "tasks": meta["tasks"], "normalizer": norm,
    }
    print(json.dumps(result, indent=2))
    return 0
