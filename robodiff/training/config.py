"""Compose a run config from hydra groups (``task`` x ``policy``) with errors that list the valid choices.

We use hydra's compose API rather than ``@hydra.main`` so a typo in a group choice or a key becomes one
clear message ("unknown policy 'unet_lowdm'; valid choices: ...", "unknown key training.lrr; did you mean
training.lr? keys under training: ...") instead of a stack trace, and so tests and the demo compose the
same configs in-process. The result is a plain, fully resolved dict: it is what checkpoints store, and
objects are built from it by explicit builders (never by ``_target_`` instantiation).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable, Sequence

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A bad group choice, key or value in the run config; the message lists what is valid."""


def group_choices(config_dir: Path, group: str) -> list:
    return sorted(p.stem for p in (Path(config_dir) / group).glob("*.yaml"))


def _groups(config_dir: Path) -> list:
    return sorted(p.name for p in Path(config_dir).iterdir() if p.is_dir())


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _split_override(o: str):
    key, sep, value = o.partition("=")
    return key.strip(), sep, value


def _check_override_keys(base: DictConfig, overrides: Sequence[str], groups: list) -> None:
    """Every ``key=value`` override (not ``+key`` / ``~key``) must name an existing key."""
    for o in overrides:
        key, sep, _ = _split_override(o)
        if not sep:
            raise ConfigError(f"override {o!r} is not of the form key=value")
        if key[:1] in "+~" or key in groups:
            continue
        node, path = base, []
        for part in key.split("."):
            if not isinstance(node, DictConfig) or part not in node:
                parent = ".".join(path) or "<top level>"
                valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
                raise ConfigError(
                    f"unknown config key {key!r}: {_suggest(part, valid)}"
                    f"valid keys under {parent}: {', '.join(map(str, valid))}. "
                    f"(Use +{key}=... to add a new key on purpose.)")
            node, path = node[part], path + [part]


def compose_config(config_dir: str | Path, overrides: Sequence[str] = (), config_name: str = "train") -> dict:
    """Compose ``config_name`` with ``overrides`` (hydra syntax) into a resolved plain dict."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    config_dir = Path(config_dir).resolve()
    groups = _groups(config_dir)
    overrides = list(overrides)
    for o in overrides:
        key, sep, value = _split_override(o)
        if key in groups and sep:
            valid = group_choices(config_dir, key)
            if value not in valid:
                raise ConfigError(f"unknown {key} {value!r}: {_suggest(value, valid)}valid choices: {', '.join(valid)}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            base = compose(config_name, overrides=[o for o in overrides if _split_override(o)[0] in groups])
            _check_override_keys(base, overrides, groups)
            cfg = compose(config_name, overrides=overrides)
    except HydraException as exc:
        raise ConfigError(f"cannot compose config: {exc}") from exc
    finally:
        GlobalHydra.instance().clear()
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception as exc:  # omegaconf's interpolation / missing-value errors
        raise ConfigError(f"config has an unresolved value: {exc}") from exc


TRAINING_DEFAULTS_FILE = Path(__file__).with_name("training_defaults.yaml")


def training_defaults() -> dict:
    """The one training loop's default ``training`` and ``logging`` sections (training_defaults.yaml)."""
    return OmegaConf.to_container(OmegaConf.load(TRAINING_DEFAULTS_FILE), resolve=True)


def with_training_defaults(cfg: dict) -> dict:
    """``cfg`` with every missing ``training.*`` / ``logging.*`` key filled from the defaults (a new dict).

    For programs that build their run config in Python (the image and text CLIs) instead of composing it
    with hydra; a key that the defaults do not know is an error, so a typo cannot silently do nothing.
    """
    defaults = training_defaults()
    for section in ("training", "logging"):
        _check_known(cfg.get(section) or {}, defaults[section], section)
    merged = OmegaConf.merge(OmegaConf.create(defaults), OmegaConf.create(cfg))
    return OmegaConf.to_container(merged, resolve=True)


def _check_known(given: dict, known: dict, where: str) -> None:
    for key, value in given.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{where}.{key}': {_suggest(key, known)}"
                              f"valid keys under {where}: {', '.join(sorted(known))}")
        if isinstance(value, dict) and isinstance(known[key], dict):
            _check_known(value, known[key], f"{where}.{key}")
