"""The one reverse-diffusion loop, shared by action, image and text-embedding denoisers.

A denoiser is any callable ``denoiser(x, t, cond) -> output`` with ``x`` of shape (B, ...), ``t`` an int64
tensor (B,) and ``cond`` a tensor, a dict of tensors or None; the output has the shape of ``x`` and means
what the scheduler's ``prediction_type`` says.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from robodiff.diffusion.schedulers import NoiseScheduler, join_prediction, split_prediction

Cond = torch.Tensor | dict[str, torch.Tensor] | None
Denoiser = Callable[[torch.Tensor, torch.Tensor, Cond], torch.Tensor]
# classifier_grad(x_t, t) -> grad_x log p(y | x_t), for the labels y the caller wants
ClassifierGrad = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _batch_cat(a: Any, b: Any) -> Any:
    """Concatenate two conditions along the batch axis (tensors, dicts of tensors)."""
    if isinstance(a, dict):
        return {k: _batch_cat(a[k], b[k]) for k in a}
    return torch.cat([a, b], dim=0)


@torch.no_grad()
def sample(denoiser: Denoiser, shape: tuple[int, ...], cond: Cond, scheduler: NoiseScheduler, steps: int,
           generator: torch.Generator | None = None, *, given: torch.Tensor | None = None,
           given_mask: torch.Tensor | None = None, guidance_scale: float = 1.0, uncond: Cond = None,
           classifier_grad: ClassifierGrad | None = None, classifier_scale: float = 0.0,
           device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
           trajectory: list | None = None) -> torch.Tensor:
    """Draw samples of ``shape`` by running ``scheduler`` for ``steps`` steps from its prior (pure noise).

    Inpainting: where ``given_mask`` is True, the sample holds ``given`` before every denoiser call and in
    the result, exactly (the denoiser sees the clean values, as :func:`diffusion_loss` trains it to).

    Classifier-free guidance: with ``guidance_scale`` w != 1 the denoiser is run on ``cond`` and ``uncond``
    in one doubled batch and its outputs combined as ``out_u + w * (out_c - out_u)`` (with a learned
    variance, only the prediction half is combined; the variance is the conditional one, as in GLIDE).

    Classifier guidance ("Diffusion Models Beat GANs", Alg. 2): ``classifier_grad(x_t, t)`` returns
    grad log p(y | x_t); ``classifier_scale`` s times it is added to the score, i.e. the predicted noise
    becomes ``eps - sqrt(1 - a_t) * s * grad``, whatever the prediction type and the sampler.

    trajectory: if a list is given, x_t before every step (and the result) is appended to it, on the CPU.
    """
    if (given is None) != (given_mask is None):
        raise ValueError("inpainting needs both `given` and `given_mask`")
    if guidance_scale != 1.0 and uncond is None:
        raise ValueError("classifier-free guidance (guidance_scale != 1) needs the unconditional `uncond`")
    if classifier_scale and classifier_grad is None:
        raise ValueError("classifier guidance (classifier_scale != 0) needs `classifier_grad`")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    x = scheduler.prior(shape, generator=generator, device=device, dtype=dtype)
    if given is not None:
        given_mask = given_mask.to(device).expand(shape)
        given = given.to(device, dtype)
    guided = guidance_scale != 1.0
    both = _batch_cat(cond, uncond) if guided else cond
    timesteps = scheduler.set_timesteps(steps)  # on the CPU, where the schedulers index their tables
    # a Gaussian scheduler may ask the denoiser for a variance too (Improved DDPM); a process without the
    # notion (the masked process: its outputs are logits) takes the output whole
    split_variance = getattr(scheduler, "split_variance", lambda out: (out, None))
    for t, t_dev in zip(timesteps, timesteps.to(device)):
        if given is not None:
            x = torch.where(given_mask, given, x)
        if trajectory is not None:
            trajectory.append(x.cpu())
        if guided:
            out_c, out_u = denoiser(torch.cat([x, x]), t_dev.expand(2 * shape[0]), both).chunk(2)
            (pred_c, var), (pred_u, _) = split_variance(out_c), split_variance(out_u)
            pred = pred_u + guidance_scale * (pred_c - pred_u)
        else:
            pred, var = split_variance(denoiser(x, t_dev.expand(shape[0]), cond))
        if classifier_scale:
            a_t = scheduler.alphas_cumprod[t].to(x.device, x.dtype)
            _, eps = split_prediction(pred, x, a_t, scheduler.prediction_type)
            eps = eps - (1 - a_t).sqrt() * classifier_scale * classifier_grad(x, t_dev.expand(shape[0]))
            pred = join_prediction((x - (1 - a_t).sqrt() * eps) / a_t.sqrt(), eps, a_t, scheduler.prediction_type)
        out = pred if var is None else torch.cat([pred, var], dim=1)
        x = scheduler.step(out, t, x, generator=generator)
    if given is not None:
        x = torch.where(given_mask, given, x)
    if trajectory is not None:
        trajectory.append(x.cpu())
    return x
