"""Rebuild a trained policy from its checkpoint alone (stored config, EMA weights, normalizer): used by
``robodiff eval``, ``robodiff deploy`` and anything else that runs a checkpoint."""

from __future__ import annotations


def load_policy(checkpoint, device: str = "auto", use_ema: bool = True):
    """(policy, checkpoint dict) rebuilt through policies.make_policy from the checkpoint's own config, on
    ``device`` (auto: cuda when available)."""
    import torch

    import policies
    from robodiff.flags import resolve_device
    from robodiff.training.checkpoint import CheckpointError, load_checkpoint, load_module_state

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    try:
        policy = policies.make_policy(cfg["policy"], cfg["task"]["shape_meta"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: its stored policy config does not build with this robodiff "
                              f"version ({exc})") from exc
    state = ckpt.get("ema_model") if use_ema and ckpt.get("ema_model") is not None else ckpt["model"]
    load_module_state(policy, state, checkpoint, "EMA model" if state is ckpt.get("ema_model") else "model")
    return policy.to(torch.device(resolve_device(device))).eval(), ckpt
