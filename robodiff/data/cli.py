"""``robodiff data``: inspect, convert and look at demonstration data.

    robodiff data info PATH [--json]
    robodiff data convert SRC DST [--to lerobot] [--map SRC_KEY=DST_KEY ...] [--image-dtype uint8]
    robodiff data view PATH --episode I --out ep.mp4
    robodiff data stats PATH --out stats.png
    robodiff data repair SRC DST [--drop-key KEY ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _format_info(info: dict) -> str:
    lines = [f"{info['path']}  (zarr format {info['zarr_format']})",
             f"episodes: {info['n_episodes']}   steps: {info['n_steps']}"]
    if info["episode_length"]:
        el = info["episode_length"]
        lines.append(f"episode length: min {el['min']}, mean {el['mean']:.1f}, max {el['max']}")
    rows = [("key", "shape", "dtype", "chunks", "compressor")]
    for k, v in info["keys"].items():
        rows.append((k, str(tuple(v["shape"])), v["dtype"], str(tuple(v.get("chunks", ()))), v.get("compressor", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def _cmd_info(args) -> int:
    from robodiff.data import ReplayBuffer

    rb = ReplayBuffer.open(args.path, mode="r")
    info = rb.info()
    print(json.dumps(info, indent=2) if args.json else _format_info(info))
    return 0


def _cmd_convert(args) -> int:
    from robodiff.data.convert import convert
    from robodiff.data.lerobot import parse_key_map

    options = {k: v for k, v in (("fps", args.fps), ("task", args.task), ("vcodec", args.vcodec), ("crf", args.crf),
                                 ("pix_fmt", args.pix_fmt), ("robot_type", args.robot_type),
                                 ("data_files_size_in_mb", args.data_file_mb),
                                 ("video_files_size_in_mb", args.video_file_mb)) if v is not None}
    out = convert(Path(args.src), Path(args.dst), image_dtype=args.image_dtype, overwrite=args.overwrite, to=args.to,
                  key_map=parse_key_map(args.map), progress=not args.quiet, **options)
    print(out.summary())
    return 0


def _cmd_view(args) -> int:
    from robodiff.data.viewer import render_episode

    out = render_episode(Path(args.path), args.episode, Path(args.out), keys=args.keys, fps=args.fps,
                         key_map=_key_map(args), progress=not args.quiet)
    print(f"wrote {out.path}: episode {args.episode}, {out.n_frames} frames {out.width}x{out.height} "
          f"at {out.fps} fps (cameras {out.cameras}, traces {out.traces})")
    return 0


def _cmd_stats(args) -> int:
    from robodiff.data.viewer import plot_stats

    out = plot_stats(Path(args.path), Path(args.out), key_map=_key_map(args))
    print(f"wrote {out}")
    return 0


def _cmd_repair(args) -> int:
    from robodiff.data.replay_buffer import repair

    out, report = repair(args.src, args.dst, drop_keys=args.drop_key, overwrite=args.overwrite)
    lost = report["episodes_in"] - report["episodes_kept"]
    print(f"wrote {out.path}: kept {report['episodes_kept']} of {report['episodes_in']} episodes "
          f"({report['steps_kept']} steps; {lost} dropped), keys {out.keys()}; array lengths in {args.src}: "
          f"{report['lengths']}")
    return 0


def _key_map(args):
    from robodiff.data.lerobot import parse_key_map

    return parse_key_map(args.map)


def register(subparsers) -> None:
    """Add the ``data`` command group to ``robodiff``'s subparsers."""
    data = subparsers.add_parser("data", help="inspect, convert and look at demonstration data",
                                 description="Inspect, convert and look at demonstration data: zarr replay buffers, "
                                             "robomimic HDF5 files and LeRobotDataset v3.0 directories.")
    dsub = data.add_subparsers(dest="data_command", required=True)

    info = dsub.add_parser("info", help="episodes, steps and per-key shape/dtype/chunks/compressor of a buffer",
                           description="Summarise a replay buffer (zarr v2/v3 directory or .zip).")
    info.add_argument("path", help="replay buffer path (directory store or .zip)")
    info.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    info.set_defaults(func=_cmd_info)

    conv = dsub.add_parser(
        "convert", help="convert between zarr, .zip, robomimic .hdf5 and LeRobotDataset v3.0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy demonstrations from SRC to DST.\n\n"
                    "SRC (detected from its layout): a replay buffer (zarr v2/v3 directory or .zip), a robomimic-"
                    "format .hdf5 file, or a LeRobotDataset v3.0 directory (meta/info.json, data/, videos/).\n"
                    "DST: --to FORMAT, else from the suffix: .zip, .hdf5/.h5, otherwise a zarr 3 directory.\n\n"
                    "Keys map by convention between LeRobot and replay buffers: action <-> action, state (or\n"
                    "agent_pos) <-> observation.state, image key CAM <-> observation.images.CAM, observation.X ->\n"
                    "X; --map renames the rest (names on the SRC side first). Image keys (4-D arrays) are\n"
                    "stored as uint8 HWC by default; LeRobot videos are H.264 (or AV1) mp4.\n\n"
                    "examples:\n"
                    "  robodiff data convert pusht.zarr pusht_lerobot --to lerobot --task 'Push the T onto the target'\n"
                    "  robodiff data convert pusht_lerobot pusht2.zarr\n"
                    "  robodiff data convert hub_pusht pusht.zarr --map observation.image=img")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--to", choices=["zarr", "zip", "hdf5", "lerobot"], default=None,
                      help="destination format (default: from DST's suffix; zarr for a plain name)")
    conv.add_argument("--map", action="append", metavar="SRC_KEY=DST_KEY",
                      help="rename one key or LeRobot feature (repeatable), e.g. observation.image=img")
    conv.add_argument("--image-dtype", default="uint8", choices=["uint8", "keep"],
                      help="dtype for 4-D image arrays (default uint8; 'keep' leaves them as they are)")
    conv.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    lr = conv.add_argument_group("LeRobot destination (--to lerobot)")
    lr.add_argument("--fps", type=int, default=None,
                    help="frame rate (default: the source's when it came from LeRobot, else 10 = Push-T's)")
    lr.add_argument("--task", default=None, help="task string for every episode (default: the source's tasks, "
                                                 "else its file name)")
    lr.add_argument("--vcodec", choices=["h264", "av1"], default=None, help="video codec (default h264)")
    lr.add_argument("--crf", type=int, default=None, help="video quality, lower is better (default 23 h264, 30 av1)")
    lr.add_argument("--pix-fmt", choices=["yuv420p", "yuv444p"], default=None,
                    help="video pixel format (default yuv420p, what LeRobot writes)")
    lr.add_argument("--robot-type", default=None, help="robot_type in meta/info.json")
    lr.add_argument("--data-file-mb", type=float, default=None, help="start a new parquet file past this size (100)")
    lr.add_argument("--video-file-mb", type=float, default=None, help="start a new mp4 file past this size (200)")
    conv.set_defaults(func=_cmd_convert)

    view = dsub.add_parser(
        "view", help="render one episode as an mp4: cameras side by side over state/action traces",
        description="Render episode I of PATH (any format `robodiff data convert` reads) as an mp4: every camera "
                    "side by side, and under them a strip plotting each low-dim key's dimensions over the episode "
                    "with the current step marked.")
    view.add_argument("path")
    view.add_argument("--episode", type=int, default=0, help="episode index (negative counts from the end)")
    view.add_argument("--out", required=True, help="output .mp4")
    view.add_argument("--keys", nargs="+", default=None, help="low-dim keys to plot (default: all)")
    view.add_argument("--fps", type=int, default=None, help="video rate (default: the dataset's, else 10)")
    view.add_argument("--map", action="append", metavar="SRC_KEY=DST_KEY", help="as for convert (LeRobot sources)")
    view.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    view.set_defaults(func=_cmd_view)

    stats = dsub.add_parser(
        "stats", help="a PNG of episode lengths, per-dimension histograms and action trajectories",
        description="Plot PATH's episode lengths, a histogram per dimension of the action and of every low-dim "
                    "observation key, and the actions' xy trajectories (first two action dimensions).")
    stats.add_argument("path")
    stats.add_argument("--out", required=True, help="output .png")
    stats.add_argument("--map", action="append", metavar="SRC_KEY=DST_KEY", help="as for convert (LeRobot sources)")
    stats.set_defaults(func=_cmd_stats)

    rep = dsub.add_parser(
        "repair", help="write a consistent copy of a buffer that `open` reports as corrupt",
        description="Copy SRC to DST keeping the episodes every array holds completely (episode ends that "
                    "increase and lie within every array); SRC is only read. --drop-key leaves an array out "
                    "first, e.g. the one that lost rows, to keep every episode.")
    rep.add_argument("src")
    rep.add_argument("dst")
    rep.add_argument("--drop-key", action="append", default=[], metavar="KEY", help="leave this array out")
    rep.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    rep.set_defaults(func=_cmd_repair)
