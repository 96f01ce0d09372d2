"""The one flag vocabulary of robodiff's commands, so that ``robodiff collect``, ``eval``, ``record``, ``deploy``
and the benchmarks spell the same thing the same way:

    --output PATH       where results go (old spelling --out still accepted)
    --overwrite         replace results already there (without it a command refuses to touch them)
    --episodes N        episodes to run or record (old: --n-episodes, --max-episodes)
    --duration S        seconds per episode (old: --max-duration)
    --start-seed N      first seed (old: --seed-start, --seed)
    --n-workers N       worker processes (old: --workers)
    --device D          auto | cpu | cuda | cuda:N; auto = cuda when available

Old spellings stay accepted as hidden aliases (not shown in --help) so existing command lines keep working.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEVICE_HELP = "auto (cuda when available, else cpu) | cpu | cuda | cuda:N"


class _AliasOfRequired(argparse._StoreAction):
    """An old spelling of a required flag: using it satisfies the requirement (argparse checks each action)."""

    def __init__(self, *args, primary: argparse.Action, **kwargs):
        super().__init__(*args, **kwargs)
        self.primary = primary

    def __call__(self, parser, namespace, values, option_string=None):
        self.primary.required = False
        super().__call__(parser, namespace, values, option_string)


def _flag(ap: argparse.ArgumentParser, name: str, aliases: tuple[str, ...], **kwargs) -> None:
    """``name`` shown in --help; each alias parses into the same destination but stays out of --help."""
    action = ap.add_argument(name, **kwargs)
    alias_kwargs = {k: v for k, v in kwargs.items() if k in ("type", "nargs", "choices")}
    if action.required:
        alias_kwargs.update(action=_AliasOfRequired, primary=action)
    for alias in aliases:
        ap.add_argument(alias, dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **alias_kwargs)


def add_output(ap, help: str, required: bool = False, default=None) -> None:
    _flag(ap, "--output", ("--out",), type=Path, required=required, default=default, help=help)


def add_overwrite(ap, what: str = "--output") -> None:
    ap.add_argument("--overwrite", action="store_true", help=f"replace {what} if it already exists")


def add_episodes(ap, default, help: str) -> None:
    _flag(ap, "--episodes", ("--n-episodes", "--max-episodes"), type=int, default=default, help=help)


def add_duration(ap, default, help: str = "seconds per episode") -> None:
    _flag(ap, "--duration", ("--max-duration",), type=float, default=default, help=help)


def add_start_seed(ap, default, help: str) -> None:
    _flag(ap, "--start-seed", ("--seed-start", "--seed"), type=int, default=default, help=help)


def add_n_workers(ap, default, help: str) -> None:
    _flag(ap, "--n-workers", ("--workers",), type=int, default=default, help=help)


def add_device(ap, default: str = "auto") -> None:
    ap.add_argument("--device", default=default, help=f"{DEVICE_HELP} (default {default})")


def resolve_device(name: str | None) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; anything else unchanged."""
    if name in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def refuse_existing(*paths: Path, overwrite: bool) -> None:
    """Raise FileExistsError naming the first existing path unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if Path(p).exists():
            raise FileExistsError(f"{p} already exists; pass --overwrite to replace it, or choose another --output")
