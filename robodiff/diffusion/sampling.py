"""The one reverse-diffusion loop, shared by action, image and text-embedding denoisers.

A denoiser is any callable ``denoiser(x, t, cond) -> output`` with ``x`` of shape (B, ...), ``t`` an int64
tensor (B,) and ``cond`` a tensor, a dict of tensors or None; the output has the shape of ``x`` and means
what the scheduler's ``prediction_type`` says.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from robodiff.diffusion.schedulers import NoiseScheduler

Cond = torch.Tensor | dict[str, torch.Tensor] | None
Denoiser = Callable[[torch.Tensor, torch.Tensor, Cond], torch.Tensor]


def _batch_cat(a: Any, b: Any) -> Any:
    """Concatenate two conditions along the batch axis (tensors, dicts of tensors)."""
    if isinstance(a, dict):
        return {k: _batch_cat(a[k], b[k]) for k in a}
    return torch.cat([a, b], dim=0)


@torch.no_grad()
def sample(denoiser: Denoiser, shape: tuple[int, ...], cond: Cond, scheduler: NoiseScheduler, steps: int,
           generator: torch.Generator | None = None, *, given: torch.Tensor | None = None,
           given_mask: torch.Tensor | None = None, guidance_scale: float = 1.0, uncond: Cond = None,
           device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw samples of ``shape`` by running ``scheduler`` for ``steps`` steps from its prior (pure noise).

    Inpainting: where ``given_mask`` is True, the sample holds ``given`` before every denoiser call and in
    the result, exactly (the denoiser sees the clean values, as :func:`diffusion_loss` trains it to).

    Classifier-free guidance: with ``guidance_scale`` w != 1 the denoiser is run on ``cond`` and ``uncond``
    in one doubled batch and its outputs combined as ``out_u + w * (out_c - out_u)``.
    """
    if (given is None) != (given_mask is None):
        raise ValueError("inpainting needs both `given` and `given_mask`")
    if guidance_scale != 1.0 and uncond is None:
        raise ValueError("classifier-free guidance (guidance_scale != 1) needs the unconditional `uncond`")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    x = scheduler.prior(shape, generator=generator, device=device, dtype=dtype)
    if given is not None:
        given_mask = given_mask.to(device).expand(shape)
        given = given.to(device, dtype)
    guided = guidance_scale != 1.0
    both = _batch_cat(cond, uncond) if guided else cond
    timesteps = scheduler.set_timesteps(steps)  # on the CPU, where the schedulers index their tables
    for t, t_dev in zip(timesteps, timesteps.to(device)):
        if given is not None:
            x = torch.where(given_mask, given, x)
        if guided:
            out_c, out_u = denoiser(torch.cat([x, x]), t_dev.expand(2 * shape[0]), both).chunk(2)
            out = out_u + guidance_scale * (out_c - out_u)
        else:
            out = denoiser(x, t_dev.expand(shape[0]), cond)
        x = scheduler.step(out, t, x, generator=generator)
    if given is not None:
        x = torch.where(given_mask, given, x)
    return x
