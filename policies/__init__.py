"""Policies: observation dicts in, action chunks out. ``make_policy`` is the single builder."""

from __future__ import annotations

from typing import Any, Mapping

from policies.config import PolicyConfig, PolicyConfigError
from policies.diffusion_policy import DiffusionPolicy, PolicyInputError


def make_policy(policy_cfg: Mapping[str, Any] | PolicyConfig | None, shape_meta: Mapping[str, Any]) -> DiffusionPolicy:
    """Build a policy from a (validated) config dict and the task's shape_meta.

    ``make_policy(policy.config, policy.shape_meta)`` rebuilds an equal, untrained policy; load the
    state_dict (weights + normalizer) to restore it.
    """
    return DiffusionPolicy(PolicyConfig.from_dict(policy_cfg), shape_meta)


__all__ = ["DiffusionPolicy", "PolicyConfig", "PolicyConfigError", "PolicyInputError", "make_policy"]
