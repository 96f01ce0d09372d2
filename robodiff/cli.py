"""The ``robodiff`` command: inspect and convert demonstration data.

    robodiff data info|convert|view|stats ...   (robodiff/data/cli.py)

Errors a person can fix are printed as one line on stderr (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from robodiff.data.cli import register as register_data
from robodiff.data.replay_buffer import ReplayBufferError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robodiff", description="robodiff: diffusion policies for robot control.")
    sub = parser.add_subparsers(dest="command", required=True)
    register_data(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ReplayBufferError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"robodiff: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
