"""Policies: observation dicts in, action chunks out. ``make_policy`` is the single builder.

The names below load on first use, so that ``import policies.commands`` (what ``robodiff --help`` does) does not
load torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from policies.config import PolicyConfig
    from policies.diffusion_policy import DiffusionPolicy

_LAZY = {"DiffusionPolicy": "policies.diffusion_policy", "PolicyInputError": "policies.diffusion_policy",
         "PolicyConfig": "policies.config", "PolicyConfigError": "policies.config"}


def make_policy(policy_cfg: Mapping[str, Any] | PolicyConfig | None, shape_meta: Mapping[str, Any]) -> DiffusionPolicy:
    """Build a policy from a (validated) config dict and the task's shape_meta.

    ``make_policy(policy.config, policy.shape_meta)`` rebuilds an equal, untrained policy; load the
    state_dict (weights + normalizer) to restore it.
    """
    from policies.config import PolicyConfig
    from policies.diffusion_policy import DiffusionPolicy

    return DiffusionPolicy(PolicyConfig.from_dict(policy_cfg), shape_meta)


def build_policy(cfg: Mapping[str, Any], dataset=None) -> DiffusionPolicy:
    """The training loop's model builder for a run config (``cfg["policy"]`` x ``cfg["task"]["shape_meta"]``).

    With a dataset (training) the normalizer is fit to it; without one (loading a checkpoint) the normalizer
    comes with the weights.
    """
    policy = make_policy(cfg["policy"], cfg["task"]["shape_meta"])
    if dataset is not None:
        policy.set_normalizer(dataset.get_normalizer())
    return policy


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'policies' has no attribute {name!r}")


__all__ = ["DiffusionPolicy", "PolicyConfig", "PolicyConfigError", "PolicyInputError", "build_policy", "make_policy"]
