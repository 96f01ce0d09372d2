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


def sampler_choice(config: dict, sampler: str | None = None, steps: int | None = None,
                   other_steps: int = 10) -> tuple[str, int]:
    """(sampler name, steps) a command runs a checkpoint with: ``sampler``/``steps`` where given, else the
    checkpoint's configured ones (a distilled student keeps its lcm sampler); a different sampler given without
    ``steps`` gets ``other_steps``."""
    configured = config["policy"].get("sampler", {})
    name = sampler or configured.get("name", "ddpm")
    same = name == configured.get("name", "ddpm")
    return name, int(steps or (configured.get("steps", 100) if same else other_steps))
