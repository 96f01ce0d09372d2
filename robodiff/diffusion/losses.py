"""The one denoising training loss, for any data shape and any prediction type, and the bound it belongs to."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from robodiff.diffusion.sampling import Cond, Denoiser
from robodiff.diffusion.schedulers import NoiseScheduler

HYBRID_VLB_WEIGHT = 1e-3  # Improved DDPM's lambda in L_hybrid = L_simple + lambda * L_vlb


def diffusion_loss(denoiser: Denoiser, x0: torch.Tensor, cond: Cond, scheduler: NoiseScheduler, *,
                   given_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                   vlb_weight: float = 0.0) -> torch.Tensor:
    """Mean squared error of the denoiser's output against the scheduler's target at random noise levels.

    x0: clean data (B, ...). For every sample a timestep t ~ U{0..T-1} and noise eps ~ N(0, I) are drawn, the
    denoiser sees ``x_t`` and must output ``scheduler.training_target`` (eps, x0 or v).

    given_mask (broadcastable to x0): entries that are conditioning, not data. They stay clean in the
    denoiser's input (as :func:`~robodiff.diffusion.sampling.sample` keeps them when inpainting) and do not
    count in the loss.

    vlb_weight: Improved DDPM's hybrid loss ``L_simple + vlb_weight * L_vlb`` (use HYBRID_VLB_WEIGHT), with
    L_vlb estimated as T * L_t in bits/dim at the drawn t. As in the paper, L_vlb trains only the variance:
    the mean's output is detached in it. A learned-variance scheduler needs vlb_weight > 0.
    """
    if scheduler.learned_variance and vlb_weight <= 0:
        raise ValueError("a learned-variance scheduler trains its variance only through the bound: pass "
                         f"vlb_weight > 0 (Improved DDPM's hybrid loss uses {HYBRID_VLB_WEIGHT})")
    if vlb_weight and given_mask is not None:
        raise ValueError("vlb_weight with given_mask is not supported: the bound is defined over all entries")
    B = x0.shape[0]
    noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = torch.randint(0, scheduler.num_train_timesteps, (B,), generator=generator,
                      device=generator.device if generator is not None else x0.device).to(x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    if given_mask is not None:
        given_mask = given_mask.expand(x0.shape)
        x_t = torch.where(given_mask, x0, x_t)
    out = denoiser(x_t, t, cond)
    pred, var = scheduler.split_variance(out)
    if pred.shape != x0.shape:
        raise ValueError(f"denoiser output shape {tuple(pred.shape)} != data shape {tuple(x0.shape)}"
                         + (" (learned variance: 2x channels expected)" if scheduler.learned_variance else ""))
    err = F.mse_loss(pred, scheduler.training_target(x0, noise, t), reduction="none")
    if given_mask is None:
        loss = err.mean()
    else:
        free = ~given_mask
        loss = (err * free).sum() / free.sum().clamp_min(1)
    if vlb_weight:
        frozen = pred.detach() if var is None else torch.cat([pred.detach(), var], dim=1)
        l_t = scheduler.vlb_term(frozen, x0, x_t, t) / math.log(2)
        loss = loss + vlb_weight * scheduler.num_train_timesteps * l_t.mean()
    return loss


@torch.no_grad()
def bits_per_dim(denoiser: Denoiser, x0: torch.Tensor, cond: Cond, scheduler: NoiseScheduler, *,
                 generator: torch.Generator | None = None, progress: bool = False) -> dict[str, torch.Tensor]:
    """The exact variational bound -log p(x_0) <= L_0 + ... + L_{T-1} + L_T in bits/dim, per sample.

    Every one of the T terms is evaluated (one denoiser call per timestep, one noise draw per term), for
    fixed- or learned-variance models alike. x0: 8-bit data scaled to [-1, 1]. Returns ``total`` (B,),
    ``prior`` (B,) and ``terms`` (T, B), all in bits/dim.
    """
    T = scheduler.num_train_timesteps
    terms = torch.empty(T, x0.shape[0], device=x0.device)
    for t in tqdm(range(T), desc="bits/dim", disable=not progress, leave=False):
        tt = torch.full((x0.shape[0],), t, device=x0.device, dtype=torch.long)
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = scheduler.add_noise(x0, noise, tt)
        terms[t] = scheduler.vlb_term(denoiser(x_t, tt, cond), x0, x_t, tt) / math.log(2)
    prior = scheduler.prior_kl(x0) / math.log(2)
    return {"total": terms.sum(0) + prior, "prior": prior, "terms": terms}
