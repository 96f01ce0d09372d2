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
"""

from __future__ import annotations

import abc
from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, LCMScheduler
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

PREDICTION_TYPES = {"epsilon": "epsilon", "sample": "sample", "v": "v_prediction", "v_prediction": "v_prediction"}
TIMESTEP_SPACINGS = ("trailing", "linspace")  # both start sampling at t = T-1; "leading" does not


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
        if self.config.clip_sample:
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
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


def _ddpm_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    return dict(common, variance_type="fixed_small", clip_sample=clip, clip_sample_range=clip_range)


def _ddim_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    return dict(common, clip_sample=clip, clip_sample_range=clip_range, set_alpha_to_one=True)


def _dpmsolver_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    if clip and clip_range != 1.0:
        raise ValueError("dpmsolver supports clip_sample only with clip_sample_range 1.0")
    # DPM-Solver has no clip_sample; dynamic thresholding with its threshold capped at 1.0 clamps the
    # predicted x_0 to [-1, 1] exactly (s = clamp(quantile(|x0|), 1, 1) = 1), i.e. the same clipping.
    return dict(common, algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,
                thresholding=clip, dynamic_thresholding_ratio=0.995, sample_max_value=1.0,
                final_sigmas_type="zero")


def lcm_original_steps(num_train_timesteps: int) -> int:
    """Points of the consistency grid: T // 5 for the 100-step action schedules (jumps of 5 training steps), at
    most diffusers' default of 50 (1000-step image schedules)."""
    return max(1, min(50, num_train_timesteps // 5))


def consistency_grid(num_train_timesteps: int) -> torch.Tensor:
    """The timesteps a consistency model is trained and sampled on (LCMScheduler's ``lcm_origin_timesteps``):
    every c-th step ending at T-1, c = T // lcm_original_steps(T)."""
    n = lcm_original_steps(num_train_timesteps)
    c = num_train_timesteps // n
    return torch.arange(1, n + 1) * c - 1


def _lcm_kwargs(common: dict, clip: bool, clip_range: float) -> dict:
    return dict(common, clip_sample=clip, clip_sample_range=clip_range, set_alpha_to_one=True,
                original_inference_steps=lcm_original_steps(common["num_train_timesteps"]))


# name -> (diffusers class, constructor kwargs from the common ones, extra step() kwargs given eta)
_ALGORITHMS: dict[str, tuple[type, Callable[..., dict], Callable[[float], dict]]] = {
    "ddpm": (DDPMScheduler, _ddpm_kwargs, lambda eta: {}),
    "ddim": (SpacedDDIMScheduler, _ddim_kwargs, lambda eta: {"eta": eta}),
    "dpmsolver": (DPMSolverMultistepScheduler, _dpmsolver_kwargs, lambda eta: {}),
    "lcm": (LCMScheduler, _lcm_kwargs, lambda eta: {}),
}
SCHEDULER_NAMES = tuple(_ALGORITHMS)


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
    """

    def __init__(self, name: str = "ddpm", num_train_timesteps: int = 100,
                 beta_schedule: str = "squaredcos_cap_v2", beta_start: float = 1e-4, beta_end: float = 0.02,
                 prediction_type: str = "epsilon", clip_sample: bool = True, clip_sample_range: float = 1.0,
                 timestep_spacing: str = "trailing", eta: float = 0.0):
        if name not in _ALGORITHMS:
            raise ValueError(f"unknown scheduler {name!r}; choose one of {list(SCHEDULER_NAMES)}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {sorted(PREDICTION_TYPES)}")
        if timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing {timestep_spacing!r} is not supported; use one of "
                             f"{list(TIMESTEP_SPACINGS)} (they start sampling at the last training step)")
        cls, kwargs_of, self._step_kwargs = _ALGORITHMS[name]
        common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                      beta_end=beta_end, prediction_type=PREDICTION_TYPES[prediction_type],
                      timestep_spacing=timestep_spacing)
        self.name, self.eta = name, eta
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = PREDICTION_TYPES[prediction_type]
        self.impl = cls(**kwargs_of(common, clip_sample, clip_sample_range))
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
        return lcm_original_steps(self.num_train_timesteps) if self.name == "lcm" else self.num_train_timesteps

    def step(self, model_output, timestep, sample, generator=None):
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
                f"prediction_type={self.prediction_type!r}, eta={self.eta})")


def make_scheduler(name: str, **noise) -> NoiseScheduler:
    """The scheduler called ``name`` ("ddpm" | "ddim" | "dpmsolver" | "lcm") over the forward process ``noise``."""
    return DiffusersScheduler(name, **noise)
