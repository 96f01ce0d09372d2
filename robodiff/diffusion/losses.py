"""The one denoising training loss, for any data shape and any prediction type."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor

from robodiff.diffusion.sampling import Cond, Denoiser
from robodiff.diffusion.schedulers import NoiseScheduler


def diffusion_loss(denoiser: Denoiser, x0: torch.Tensor, cond: Cond, scheduler: NoiseScheduler, *,
                   given_mask: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared error of the denoiser's output against the scheduler's target at random noise levels.

    x0: clean data (B, ...). For every sample a timestep t ~ U{0..T-1} and noise eps ~ N(0, I) are drawn, the
    denoiser sees ``x_t`` and must output ``scheduler.training_target`` (eps, x0 or v).

    given_mask (broadcastable to x0): entries that are conditioning, not data. They stay clean in the
    denoiser's input (as :func:`~robodiff.diffusion.sampling.sample` keeps them when inpainting) and do not
    count in the loss.
    """
    B = x0.shape[0]
    noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = torch.randint(0, scheduler.num_train_timesteps, (B,), generator=generator,
                      device=generator.device if generator is not None else x0.device).to(x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    if given_mask is not None:
        given_mask = given_mask.expand(x0.shape)
        x_t = torch.where(given_mask, x0, x_t)
    pred = denoiser(x_t, t, cond)
    if pred.shape != x0.shape:
        raise ValueError(f"denoiser output shape {tuple(pred.shape)} != data shape {tuple(x0.shape)}")
    err = F.mse_loss(pred, scheduler.training_target(x0, noise, t), reduction="none")
    if given_mask is None:
        return err.mean()
    free = ~given_mask
    return (err * free).sum() / free.sum().clamp_min(1)
