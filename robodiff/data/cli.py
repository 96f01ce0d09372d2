"""``robodiff data ...``: inspect and convert demonstration replay buffers.

    robodiff data info PATH [--json]
    robodiff data convert SRC DST [--image-dtype uint8]
"""

from __future__ import annotations

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

    out = convert(Path(args.src), Path(args.dst), image_dtype=args.image_dtype, overwrite=args.overwrite)
    print(f"wrote {out.path}: {out.n_episodes} episodes, {out.n_steps} steps, keys {out.keys()}")
    return 0


def register(sub) -> None:
    """Add the ``data`` command group to the ``robodiff`` parser's subcommands."""
    data = sub.add_parser("data", help="inspect and convert demonstration replay buffers")
    dsub = data.add_subparsers(dest="data_command", required=True)

    info = dsub.add_parser("info", help="episodes, steps and per-key shape/dtype/chunks/compressor of a buffer",
                           description="Summarise a replay buffer (zarr v2/v3 directory or .zip).")
    info.add_argument("path", help="replay buffer path (directory store or .zip)")
    info.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    info.set_defaults(func=_cmd_info)

    conv = dsub.add_parser(
        "convert", help="convert between zarr v2/v3 directories, .zip stores and robomimic .hdf5",
        description="Copy demonstrations from SRC to DST. SRC: a replay buffer (zarr v2/v3 directory or .zip) or "
                    "a robomimic-format .hdf5 file. DST: a new zarr 3 directory, or a .zip file. Image keys "
                    "(4-D arrays) are stored as uint8 HWC by default.")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--image-dtype", default="uint8", choices=["uint8", "keep"],
                      help="dtype for 4-D image arrays (default uint8; 'keep' leaves them as they are)")
    conv.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    conv.set_defaults(func=_cmd_convert)
