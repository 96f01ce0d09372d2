"""Lazy package exports (PEP 562): ``from robodiff.data import ReplayBuffer`` imports only what it needs.

Why: the package ``__init__`` files re-export their public names, and importing them eagerly made every
``import robodiff.<pkg>.<anything>`` pay for torch and diffusers (13 s cold here), including ``robodiff
--help`` and the real-robot processes that only need a replay buffer.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """(``__getattr__``, ``__dir__``) for a package whose public ``name`` lives in submodule ``exports[name]``."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
