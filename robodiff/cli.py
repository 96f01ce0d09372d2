"""The ``robodiff`` command. Each command group is a module with ``register(subparsers)``.

Groups of the core are listed in ``CORE_COMMANDS``; groups that live in envs/, policies/ or real_robot/
(train, eval, collect, record, deploy, ...) register through the ``robodiff.commands`` entry-point group
of their distribution (pyproject.toml), so this module imports none of those packages and a group that
fails to import does not take the others down.

    robodiff --help            lists every installed group
    robodiff data info PATH    ...
    robodiff train | eval | collect | record | deploy | bench ...   (from policies, envs, real_robot)

A group adds commands with :func:`add_command` (the command's module is imported only when it runs, so
``robodiff --help`` loads no torch or simulator) and shares a group such as ``bench`` via :func:`command_group`.
``scripts/*.py`` run the same command modules through :func:`script_main`.

Errors a person can fix are printed as one line on stderr (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

CORE_COMMANDS = ("robodiff.data.cli", "robodiff.image.cli", "robodiff.text.cli")
ENTRY_POINT_GROUP = "robodiff.commands"


class UserError(Exception):
    """A problem the user can fix (bad path, bad option combination); printed as one line, exit code 2."""


def _user_errors() -> tuple:
    """Exception types that are messages for people, not bugs: printed without a traceback."""
    from robodiff.data.datasets import DatasetError
    from robodiff.data.replay_buffer import ReplayBufferError
    from robodiff.training.checkpoint import CheckpointError
    from robodiff.training.config import ConfigError

    return (UserError, ReplayBufferError, DatasetError, CheckpointError, ConfigError, FileNotFoundError,
            FileExistsError, KeyError)


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
    only when its command runs."""
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
    return _run(command_parser(module).parse_intermixed_args(argv))


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
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "_command", None) is None:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return _run(args)
    prog, module = args._command  # a command registered with add_command: its module parses the rest
    return _run(command_parser(module, prog).parse_intermixed_args(rest))


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"robodiff: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m robodiff.cli`: run the importable module, so that UserError raised by command modules (which
    # import robodiff.cli) is the class caught here, not a copy defined in __main__
    from robodiff.cli import main as _main

    sys.exit(_main())
