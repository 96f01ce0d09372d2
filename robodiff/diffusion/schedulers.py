"""Noise schedulers: one explicit contract over diffusers' algorithms, chosen by name.

Every sampling loop and training loss in robodiff talks to a :class:`NoiseScheduler` and nothing else,
so actions, images and text share the same code. The algorithms themselves are diffusers' (DDPM, DDIM,
DPM-Solver++ multistep); :class:`DiffusersScheduler` adapts them to the contract and fixes two things
diffusers gets wrong for few-step sampling:

* diffusers' default "leading" timestep spacing starts DDIM-10 of 100 training steps at t=90, so the first
  denoising step never sees the pure-noise level the model was trained on at t=99. We default to
  "trailing" spacing, which always starts at ``num_train_timesteps - 1``.
* diffusers' DDIM step jumps to ``t - T // N``, which is the next listed timestep only for "leading" spacing
  with N dividing T. :class:`SpacedDDIMScheduler` steps to the actual next timestep of the list.

"lcm" is diffusers' multistep consistency sampler (Latent Consistency Models): each step maps x_t to x_0 with a
consistency model and re-noises it to the next level. It is only meaningful for a denoiser trained by
consistency distillation (policies/consistency.py), whose teacher-solver grid is :func:`consistency_grid`.

Training noise (``add_noise``, ``training_target``) always comes from one DDPM forward process with the same
betas, so a model trained once can be sampled with any scheduler and any number of steps.

Improved DDPM's learned variance (``variance_type="learned_range"``) is part of the contract: the denoiser
then outputs twice the data's channels, the second half an interpolation ``v`` in [-1, 1] between log beta_t
and log beta-tilde_t. ``split_variance`` separates the two halves for every caller; ``vlb_term`` and
``prior_kl`` are the exact terms of the variational bound, so any Gaussian model (fixed or learned variance)
can be trained with the hybrid loss and scored in bits/dim.
"""

from __future__ import annotations

import abc
from typing import Callable

import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, LCMScheduler
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor
from torch.distributions import Normal

from robodiff.diffusion.names import SCHEDULER_NAMES

PREDICTION_TYPES = {"epsilon": "epsilon", "sample": "sample", "v": "v_prediction", "v_prediction": "v_prediction"}
TIMESTEP_SPACINGS = ("trailing", "linspace")  # both start sampling at t = T-1; "leading" does not
VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned_range")  # diffusers' names for beta-tilde, beta, learned


class NoiseScheduler(abc.ABC):
    """The contract between denoisers, sampling loops and losses.

    A scheduler owns a discrete forward noise process ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` over
    ``num_train_timesteps`` steps (``alphas_cumprod[t] = a_t``) and a reverse-time update. Model outputs
    are interpreted according to ``prediction_type``: "epsilon", "sample" or "v_prediction" (diffusers'
    names; configured as "epsilon", "sample", "v").
    """

    num_train_timesteps: int
    prediction_type: str
    alphas_cumprod: torch.Tensor
    variance_type: str = "fixed_small"

    @property
    def learned_variance(self) -> bool:
        """True when the denoiser also outputs its reverse-step variance (twice the data's channels)."""
        return self.variance_type == "learned_range"

    def split_variance(self, model_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the prediction of ``prediction_type``, the variance output ``v`` or None), split on dim 1."""
        if not self.learned_variance:
            return model_output, None
        if model_output.shape[1] % 2:
            raise ValueError(f"a learned-variance denoiser outputs 2x the data's channels on dim 1; got "
                             f"{model_output.shape[1]} channels (shape {tuple(model_output.shape)})")
        mean, v = model_output.chunk(2, dim=1)
        return mean, v

    def prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Where sampling starts: pure Gaussian noise here (the masked process starts from all-mask tokens).

        diffusers' ``randn_tensor`` accepts a CPU generator for a CUDA sample, so the same seed gives the same
        noise on every device.
        """
        return randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype)

    @abc.abstractmethod
    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Start a new sampling run; returns the strictly decreasing int64 timesteps to visit.

        The first is ``num_train_timesteps - 1`` (pure noise), there are ``num_inference_steps`` of them.
        """

    @abc.abstractmethod
    def step(self, model_output: torch.Tensor, timestep: torch.Tensor | int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One reverse step from ``timestep`` to the next timestep of the list (or to x_0 after the last)."""

    @abc.abstractmethod
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward process: ``x_t`` for clean ``x0``, Gaussian ``noise`` and per-sample ``timesteps`` (B,)."""

    @abc.abstractmethod
    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the denoiser must output at ``x_t`` for this scheduler's prediction type."""

    # ------------------------------------------------------------ the variational bound (Gaussian process)
    # diffusers has no batched posterior/KL API (its _get_variance takes one int timestep and clamps
    # beta-tilde_0 to 1e-20), so the few closed forms of DDPM eq. (6)-(7) / Improved DDPM sec. 2 are written
    # here, once. Index convention: timestep t in 0..T-1 noises with alphas_cumprod[t]; its "previous" is
    # t-1, and the clean data for t = 0 (so t = 0 carries the decoder term L_0).
    def _coefficients(self, t: torch.Tensor, ref: torch.Tensor) -> dict[str, torch.Tensor]:
        a = self.alphas_cumprod.to(ref.device, torch.float64)
        a_t = a[t]
        a_prev = torch.where(t > 0, a[(t - 1).clamp_min(0)], torch.ones_like(a_t))
        beta = 1 - a_t / a_prev
        post_var = beta * (1 - a_prev) / (1 - a_t)
        # beta-tilde_0 = 0: like Improved DDPM, use beta-tilde_1 for the log variance at t = 0
        post_var_1 = (1 - a[1] / a[0]) * (1 - a[0]) / (1 - a[1])
        out = {
            "a_t": a_t,
            "mean_x0": beta * a_prev.sqrt() / (1 - a_t),
            "mean_xt": (1 - a_prev) * (a_t / a_prev).sqrt() / (1 - a_t),
            "post_logvar": torch.where(t > 0, post_var, post_var_1).log(),
            "beta_logvar": torch.where(t > 0, beta, post_var_1).log(),
        }
        shape = (-1,) + (1,) * (ref.ndim - 1)
        return {k: v.view(shape).to(ref.dtype) for k, v in out.items()}

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log variance of q(x_{t-1} | x_t, x_0) (log variance clipped at t = 0, see above)."""
        c = self._coefficients(t, x_t)
        return c["mean_x0"] * x0 + c["mean_xt"] * x_t, c["post_logvar"].expand_as(x_t)

    def model_distribution(self, model_output: torch.Tensor, x_t: torch.Tensor,
                           t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log variance of the model's p(x_{t-1} | x_t): the posterior at the predicted x_0 (not
        clipped), variance fixed (beta-tilde_t or beta_t) or learned (``v`` interpolates in log space)."""
        pred, v = self.split_variance(model_output)
        c = self._coefficients(t, x_t)
        x0_hat, _ = split_prediction(pred, x_t, c["a_t"], self.prediction_type)
        mean = c["mean_x0"] * x0_hat + c["mean_xt"] * x_t
        if v is not None:
            frac = (v + 1) / 2
            return mean, frac * c["beta_logvar"] + (1 - frac) * c["post_logvar"]
        logvar = c["beta_logvar"] if self.variance_type == "fixed_large" else c["post_logvar"]
        return mean, logvar.expand_as(x_t)

    def vlb_term(self, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor:
        """L_t of the variational bound per sample (B,), in nats per dimension.

        t > 0: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)). t = 0: -log p(x_0|x_t) under a Gaussian discretised
        to 256 levels on [-1, 1] (data must be 8-bit images scaled to [-1, 1])."""
        mean, logvar = self.model_distribution(model_output, x_t, t)
        q_mean, q_logvar = self.posterior(x0, x_t, t)
        kl = torch.distributions.kl_divergence(Normal(q_mean, (0.5 * q_logvar).exp()),
                                               Normal(mean, (0.5 * logvar).exp()))
        nll = -discretized_gaussian_log_likelihood(x0, mean, logvar)
        view = (-1,) + (1,) * (x0.ndim - 1)
        return torch.where(t.view(view) > 0, kl, nll).flatten(1).mean(1)

    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T per sample (B,), nats per dimension: KL(q(x_{T-1} | x_0) || N(0, I)); no model involved."""
        a = self.alphas_cumprod[-1].to(x0.device, x0.dtype)
        q = Normal(a.sqrt() * x0, (1 - a).sqrt().expand_as(x0))
        return torch.distributions.kl_divergence(q, Normal(torch.zeros_like(x0), torch.ones_like(x0))).flatten(1).mean(1)


class SpacedDDIMScheduler(DDIMScheduler):
    """diffusers' DDIM, stepping to the next timestep of the list instead of ``t - T // N``.

    Only ``step`` differs: it is DDIM eq. (12)/(16) written out because diffusers computes the previous
    timestep inside its ``step`` and offers no hook to correct it. Everything else (betas, spacing,
    ``add_noise``, config) is diffusers'.
    """

    def previous_timestep(self, timestep: int) -> int:
        later = self.timesteps[self.timesteps < int(timestep)]
        return int(later.max()) if len(later) else -1

    def step(self, model_output, timestep, sample, eta: float = 0.0, generator=None, return_dict: bool = True):
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps before step")
        t = int(timestep)
        prev_t = self.previous_timestep(t)
        a_t = self.alphas_cumprod[t].to(sample.device, sample.dtype)
        a_prev = (self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod).to(sample.device,
                                                                                                 sample.dtype)
        x0, eps = split_prediction(model_output, sample, a_t, self.config.prediction_type)
        if self.config.thresholding or self.config.clip_sample:
            if self.config.thresholding:
                x0 = self._threshold_sample(x0)
            else:
                x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
            # the noise is re-derived from the clipped x_0 (as guided-diffusion and GLIDE do; diffusers only
            # with use_clipped_model_output): otherwise x_{t-1} pairs the clipped x_0 with the noise of the
            # unclipped one, an inconsistency every deterministic step adds and none removes, so eta = 0
            # samples got worse with more steps (Frechet 37 at 10 steps -> 145 at 100 on digits).
            eps = (sample - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        # sigma_t(eta) of DDIM eq. (16)
        std = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        prev = a_prev.sqrt() * x0 + (1 - a_prev - std**2).clamp_min(0).sqrt() * eps
        if eta > 0:
            prev = prev + std * randn_tensor(sample.shape, generator=generator, device=sample.device,
                                             dtype=sample.dtype)
        return DDIMSchedulerOutput(prev_sample=prev, pred_original_sample=x0) if return_dict else (prev, x0)


def split_prediction(model_output: torch.Tensor, x_t: torch.Tensor, alpha_cumprod: torch.Tensor,
                     prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted x_0, predicted noise) from a model output of the given prediction type at level a_t."""
    a, s = alpha_cumprod.sqrt(), (1 - alpha_cumprod).sqrt()
    if prediction_type == "epsilon":
        return (x_t - s * model_output) / a, model_output
    if prediction_type == "sample":
        return model_output, (x_t - a * model_output) / s
    if prediction_type == "v_prediction":
        return a * x_t - s * model_output, a * model_output + s * x_t
    raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {sorted(PREDICTION_TYPES)}")


def join_prediction(x0: torch.Tensor, eps: torch.Tensor, alpha_cumprod: torch.Tensor,
                    prediction_type: str) -> torch.Tensor:
    """The model output of ``prediction_type`` that means (x_0, eps) at level a_t: inverse of split_prediction."""
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        return alpha_cumprod.sqrt() * eps - (1 - alpha_cumprod).sqrt() * x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {sorted(PREDICTION_TYPES)}")


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log P(x) per element for 8-bit data in [-1, 1] under N(mean, exp(logvar)) integrated over x's bin
    (width 2/255; the edge bins extend to +-inf), as in DDPM's decoder L_0. Uses log_ndtr for the tails."""
    inv_std = (-0.5 * logvar).exp()
    upper, lower = inv_std * (x - mean + 1 / 255), inv_std * (x - mean - 1 / 255)
    # Phi(upper) - Phi(lower), evaluated on the side of the mean where it does not cancel
    right = x > mean
    delta = torch.where(right, torch.special.ndtr(-lower) - torch.special.ndtr(-upper),
                        torch.special.ndtr(upper) - torch.special.ndtr(lower))
    middle = delta.clamp_min(1e-12).log()
    return torch.where(x < -0.999, torch.special.log_ndtr(upper),
                       torch.where(x > 0.999, torch.special.log_ndtr(-lower), middle))


def _thresholding(dynamic_threshold: float | None, max_value: float) -> dict:
    """diffusers' Imagen dynamic thresholding: x_0 is clamped to the ``dynamic_threshold`` quantile s of |x_0|
    (per sample, s clamped to [1, max_value]) and divided by s."""
    if dynamic_threshold is None:
        return {}
    if not 0 < dynamic_threshold < 1:
        raise ValueError(f"dynamic_threshold is a quantile in (0, 1) (Imagen: 0.995), got {dynamic_threshold}")
    return dict(thresholding=True, dynamic_thresholding_ratio=dynamic_threshold, sample_max_value=max_value)


def _ddpm_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    return dict(common, clip_sample=clip, clip_sample_range=clip_range)


def _ddim_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    return dict(common, clip_sample=clip, clip_sample_range=clip_range, set_alpha_to_one=True)


def _dpmsolver_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    if clip and clip_range != 1.0 and not common.get("thresholding"):
        raise ValueError("dpmsolver supports clip_sample only with clip_sample_range 1.0")
    # DPM-Solver has no clip_sample; dynamic thresholding with its threshold capped at 1.0 clamps the
    # predicted x_0 to [-1, 1] exactly (s = clamp(quantile(|x0|), 1, 1) = 1), i.e. the same clipping.
    clipping = dict(thresholding=clip, dynamic_thresholding_ratio=0.995, sample_max_value=1.0)
    return dict(clipping, **common, algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,
                final_sigmas_type="zero")


def lcm_original_steps(num_train_timesteps: int, points: int | None = None) -> int:
    """Points of the consistency grid: ``points`` if given (it must divide T), else T // 5 for the 100-step
    action schedules (jumps of 5 training steps), at most diffusers' default of 50 (1000-step image schedules)."""
    if points is None:
        return max(1, min(50, num_train_timesteps // 5))
    if not 1 <= points <= num_train_timesteps or num_train_timesteps % points:
        raise ValueError(f"consistency_points={points} must divide num_train_timesteps={num_train_timesteps}")
    return int(points)


def consistency_grid(num_train_timesteps: int, points: int | None = None) -> torch.Tensor:
    """The timesteps a consistency model is trained and sampled on (LCMScheduler's ``lcm_origin_timesteps``):
    every c-th step ending at T-1, c = T // lcm_original_steps(T, points)."""
    n = lcm_original_steps(num_train_timesteps, points)
    c = num_train_timesteps // n
    return torch.arange(1, n + 1) * c - 1


def _lcm_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    # original_inference_steps (the consistency grid) is set by DiffusersScheduler from consistency_points
    return dict(common, clip_sample=clip, clip_sample_range=clip_range, set_alpha_to_one=True)


# name -> (diffusers class, constructor kwargs from the common ones, extra step() kwargs given eta)
_ALGORITHMS: dict[str, tuple[type, Callable[..., dict], Callable[[float], dict]]] = {
    "ddpm": (DDPMScheduler, _ddpm_kwargs, lambda eta: {}),
    "ddim": (SpacedDDIMScheduler, _ddim_kwargs, lambda eta: {"eta": eta}),
    "dpmsolver": (DPMSolverMultistepScheduler, _dpmsolver_kwargs, lambda eta: {}),
    "lcm": (LCMScheduler, _lcm_kwargs, lambda eta: {}),
}
assert tuple(_ALGORITHMS) == SCHEDULER_NAMES, "robodiff.diffusion.names lists the schedulers"


class DiffusersScheduler(NoiseScheduler):
    """A diffusers scheduler behind the :class:`NoiseScheduler` contract.

    Args:
        name: "ddpm", "ddim", "dpmsolver" (DPM-Solver++ 2nd-order multistep) or "lcm" (multistep consistency
            sampling, for consistency-distilled denoisers).
        num_train_timesteps, beta_schedule, beta_start, beta_end: the forward process (shared by all names).
        prediction_type: "epsilon", "sample" or "v".
        clip_sample: clamp the predicted x_0 to [-clip_sample_range, clip_sample_range] at every step.
        timestep_spacing: "trailing" (default) or "linspace"; both start at t = T-1.
        eta: DDIM noise scale (0 = deterministic); ignored by the other algorithms.
        variance_type: reverse-step variance: "fixed_small" (beta-tilde, default), "fixed_large" (beta) or
            "learned_range" (Improved DDPM; the denoiser outputs 2x channels). DDIM and DPM-Solver do not use
            a variance: they ignore the learned half.
        dynamic_threshold: Imagen's dynamic thresholding quantile (e.g. 0.995) instead of clip_sample, for
            high guidance scales; ``threshold_max`` caps the per-sample threshold.
        consistency_points: "lcm" only: points of the consistency grid the student was distilled on
            (:func:`consistency_grid`; None: T // 5, at most 50).
    """

    def __init__(self, name: str = "ddpm", num_train_timesteps: int = 100,
                 beta_schedule: str = "squaredcos_cap_v2", beta_start: float = 1e-4, beta_end: float = 0.02,
                 prediction_type: str = "epsilon", clip_sample: bool = True, clip_sample_range: float = 1.0,
                 timestep_spacing: str = "trailing", eta: float = 0.0, variance_type: str = "fixed_small",
                 dynamic_threshold: float | None = None, threshold_max: float = math.inf,
                 consistency_points: int | None = None):
        if name not in _ALGORITHMS:
            raise ValueError(f"unknown scheduler {name!r}; choose one of {list(SCHEDULER_NAMES)}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {sorted(PREDICTION_TYPES)}")
        if timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing {timestep_spacing!r} is not supported; use one of "
                             f"{list(TIMESTEP_SPACINGS)} (they start sampling at the last training step)")
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"unknown variance_type {variance_type!r}; use one of {list(VARIANCE_TYPES)}")
        cls, kwargs_of, self._step_kwargs = _ALGORITHMS[name]
        common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                      beta_end=beta_end, prediction_type=PREDICTION_TYPES[prediction_type],
                      timestep_spacing=timestep_spacing)
        self.name, self.eta = name, eta
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = PREDICTION_TYPES[prediction_type]
        self.variance_type = variance_type
        kwargs = kwargs_of(dict(common, **_thresholding(dynamic_threshold, threshold_max)), clip_sample,
                           clip_sample_range)
        self.consistency_points = consistency_points
        if name == "ddpm":
            kwargs["variance_type"] = variance_type
        if name == "lcm":
            kwargs["original_inference_steps"] = lcm_original_steps(num_train_timesteps, consistency_points)
        self.impl = cls(**kwargs)
        # the forward process for training, identical for every algorithm (DPM-Solver's add_noise assumes
        # sampling timesteps, so it is not used for training)
        self.forward_process = DDPMScheduler(**common)
        self.alphas_cumprod = self.forward_process.alphas_cumprod

    def set_timesteps(self, num_inference_steps, device=None):
        most = self.max_steps
        if not 1 <= num_inference_steps <= most:
            raise ValueError(f"num_inference_steps must be in [1, {most}] for {self.name} "
                             f"(T={self.num_train_timesteps}), got {num_inference_steps}")
        self.impl.set_timesteps(num_inference_steps, device=device)
        return self.impl.timesteps

    @property
    def max_steps(self) -> int:
        """Most sampling steps: every training step, or every point of the consistency grid for "lcm"."""
        return (lcm_original_steps(self.num_train_timesteps, self.consistency_points) if self.name == "lcm"
                else self.num_train_timesteps)

    def step(self, model_output, timestep, sample, generator=None):
        if self.learned_variance and self.name != "ddpm":  # only diffusers' DDPM step reads the variance half
            model_output, _ = self.split_variance(model_output)
        return self.impl.step(model_output, timestep, sample, generator=generator,
                              **self._step_kwargs(self.eta)).prev_sample

    def add_noise(self, x0, noise, timesteps):
        return self.forward_process.add_noise(x0, noise, timesteps)

    def training_target(self, x0, noise, timesteps):
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return x0
        return self.forward_process.get_velocity(x0, noise, timesteps)

    def __repr__(self) -> str:
        return (f"DiffusersScheduler({self.name!r}, T={self.num_train_timesteps}, "
                f"prediction_type={self.prediction_type!r}, variance_type={self.variance_type!r}, eta={self.eta})")


def make_scheduler(name: str, **noise) -> NoiseScheduler:
    """The scheduler called ``name`` ("ddpm" | "ddim" | "dpmsolver" | "lcm") over the forward process ``noise``."""
    return DiffusersScheduler(name, **noise)
