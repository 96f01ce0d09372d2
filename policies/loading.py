"""Rebuild a trained policy from its checkpoint alone (stored config, EMA weights, normalizer): used by
``robodiff eval``, ``robodiff deploy`` and anything else that runs a checkpoint."""

from __future__ import annotations


def load_policy(checkpoint, device: str = "auto", use_ema: bool = True):
    """(policy, checkpoint dict) rebuilt through policies.build_policy from the checkpoint's own config, on
    ``device`` (auto: cuda when available)."""
    import policies
    from robodiff.flags import resolve_device
    from robodiff.training.checkpoint import load_model

    return load_model(checkpoint, policies.build_policy, ema=use_ema, map_location=resolve_device(device))
