"""The ``robodiff`` command. Each command group is a module with ``register(subparsers)``.

Groups of the core are listed in ``CORE_COMMANDS``; groups that live in envs/, policies/ or real_robot/
(train, eval, collect, record, deploy, ...) register through the ``robodiff.commands`` entry-point group
of their distribution (pyproject.toml), so this module imports none of those packages and a group that
fails to import does not take the others down.

    robodiff --help            lists every installed group
    robodiff data info PATH    ...

Errors a person can fix are printed as one line on stderr (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from robodiff.data.replay_buffer import ReplayBufferError

CORE_COMMANDS = ("robodiff.data.cli", "robodiff.text.cli")
ENTRY_POINT_GROUP = "robodiff.commands"


class UserError(Exception):
    """A problem the user can fix (bad path, bad option combination); printed as one line, exit code 2."""


def _user_errors() -> tuple:
    """Exception types that are messages for people, not bugs: printed without a traceback."""
    from robodiff.data.datasets import DatasetError
    from robodiff.training.checkpoint import CheckpointError
    from robodiff.training.config import ConfigError

    return (UserError, ReplayBufferError, DatasetError, CheckpointError, ConfigError, FileNotFoundError,
            FileExistsError, KeyError)


def _registrars():
    """(name, loader of its register function) for every group: the core's, then the installed entry points."""
    for module in CORE_COMMANDS:
        yield module, lambda module=module: importlib.import_module(module).register
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        yield ep.name, ep.load


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robodiff", description="robodiff: diffusion models for robot control.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, load in _registrars():
        try:
            register = load()
        except ImportError as exc:  # a plugin whose dependencies are missing: say so, keep the rest usable
            print(f"robodiff: warning: command group {name!r} unavailable ({exc})", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"robodiff: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
