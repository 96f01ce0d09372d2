"""The ``robodiff`` command: inspect and convert demonstration data, and every command other packages register.

    robodiff data info PATH [--json]
    robodiff data convert SRC DST [--image-dtype uint8]
    robodiff train | eval | collect | record | deploy | bench ...   (registered by policies, envs, real_robot)

Command groups outside ``robodiff`` register through the ``robodiff.commands`` entry-point group (pyproject.toml):
each names a module with ``register(subparsers)``, so this module imports none of those packages.
Errors a person can fix are printed as one line on stderr (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from importlib.metadata import entry_points
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


class UserError(Exception):
    """An error the person at the command line can fix; printed as one line, exit code 2."""


# Command groups that several packages add commands to.
GROUP_HELP = {
    "bench": "benchmarks: each prints its numbers with the command, the machine and the date",
    "collect": "collect demonstrations in a simulation",
}


def command_group(subparsers, name: str):
    """The sub-subparsers of group ``name`` (one of GROUP_HELP), created on first use, so that several packages
    can add commands to one group."""
    if name not in subparsers.choices:
        group = subparsers.add_parser(name, help=GROUP_HELP[name], description=GROUP_HELP[name])
        group.set_defaults(_subparsers=group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND"))
    return subparsers.choices[name].get_default("_subparsers")


def add_command(subparsers, name: str, module: str, help: str) -> None:
    """``robodiff [group] name`` runs ``module`` (a dotted path) whose ``add_arguments(parser)`` defines its
    arguments (its docstring is the --help text) and ``run(args)`` returns the exit code. The module is imported
    only when its command runs, so ``robodiff --help`` does not load torch or a simulator."""
    parser = subparsers.add_parser(name, help=help, add_help=False)
    parser.set_defaults(_command=(parser.prog, module))


def command_parser(module: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The full argument parser of a command module (see :func:`add_command`)."""
    mod = importlib.import_module(module)
    parser = argparse.ArgumentParser(prog=prog, description=mod.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(parser)
    parser.set_defaults(func=mod.run)
    return parser


def script_main(module: str, argv: list[str] | None = None) -> int:
    """A command module as a standalone script (scripts/*.py): the same arguments, behaviour and error handling
    as its ``robodiff`` command."""
    return _run(command_parser(module).parse_args(argv))


def register_plugins(subparsers) -> None:
    """Let every installed ``robodiff.commands`` entry point add its commands."""
    for ep in sorted(entry_points(group="robodiff.commands"), key=lambda e: e.name):
        ep.load().register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robodiff", description="robodiff: diffusion policies for robot control.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    register_plugins(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "_command", None) is None:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return _run(args)
    prog, module = args._command
    return _run(command_parser(module, prog).parse_args(rest))


def _run(args) -> int:
    from robodiff.data.replay_buffer import ReplayBufferError

    try:
        return args.func(args)
    except (UserError, ReplayBufferError, FileNotFoundError, FileExistsError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"robodiff: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m robodiff.cli`: run the importable module, so that UserError raised by command modules (which
    # import robodiff.cli) is the class caught here, not a copy defined in __main__
    from robodiff.cli import main as _main

    sys.exit(_main())
