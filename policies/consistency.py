"""Few-step policies by consistency distillation of a trained diffusion policy (Consistency Policy style).

Why consistency distillation (and not shortcut / flow-map distillation): the teacher is an epsilon model on
the discrete DDPM-100 schedule, and its deterministic DDIM ODE is exactly what a consistency model learns to
jump to the end of. The student keeps the teacher's architecture, its weights as the starting point and its
input (x_t, t, observations), so no new network input (a target time or step size, as flow maps and
shortcut models need) has to be learned from scratch on a CPU budget; sampling is diffusers' LCMScheduler
(``sampler.name: lcm``) through the one sampling loop, 1 network evaluation for 1 step, k for k steps.

Training (consistency distillation, Song et al. 2023, on LCM's discrete grid ``consistency_grid(T)``):

    t_s = a grid point, t_e = t_s - c (>= 0),  x_s = sqrt(a_s) x0 + sqrt(1 - a_s) z
    x_e = one deterministic DDIM step of the frozen teacher from (x_s, t_s) to t_e
    loss = || f(x_s, t_s) - sg[f(x_e, t_e)] ||^2,   f(x, t) = c_skip(t) x + c_out(t) x0_pred(x, t)

with LCM's boundary scalings (c_skip(0) = 1, so f(x, 0) = x anchors the chain at the data). The target uses
the student's current weights under stop-gradient (improved consistency training found this better than an
EMA target; the training loop's EMA still averages the weights that are evaluated).

The student is a ``DiffusionPolicy`` whose state_dict has exactly the teacher's keys (the teacher is held
outside the module tree), so its checkpoints load and evaluate like any other policy (scripts/eval.py):
the stored config's ``policy.sampler.name: lcm`` is what makes it a few-step policy.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from policies.config import PolicyConfig, PolicyConfigError
from policies.diffusion_policy import DiffusionPolicy
from robodiff.diffusion import consistency_grid, split_prediction


class ConsistencyPolicy(DiffusionPolicy):
    """A DiffusionPolicy student trained by ``compute_loss`` = consistency distillation from ``teacher``.

    Args:
        teacher: the trained policy (frozen; weights and normalizer are copied into the student).
        steps: consistency sampling steps the student is configured to use at inference (1-3 typical).
        points: points of the consistency grid (None: T // 5, jumps of 5 training steps). Fewer points mean
            longer teacher DDIM jumps per target but fewer links between the data anchor at t=0 and pure
            noise, so a 1-step student learns faster; 5 points = the teacher's own DDIM-5 grid.
    """

    def __init__(self, teacher: DiffusionPolicy, steps: int = 1, points: int | None = None):
        if teacher.cfg.conditioning != "global":
            raise PolicyConfigError("consistency distillation supports policy.conditioning=global only; the "
                                    "teacher uses inpainting")
        # the student predicts x0 itself: from an epsilon output, x0 at t = T-1 is (x - sqrt(1-a) eps) / sqrt(a)
        # with sqrt(a) ~ 5e-4 (squaredcos_cap_v2), so a 1e-3 error in eps is a 2-unit error in the action
        noise = {**teacher.config["noise"], "prediction_type": "sample", "consistency_points": points}
        cfg = PolicyConfig.from_dict({**teacher.config, "noise": noise,
                                      "sampler": {"name": "lcm", "steps": int(steps), "eta": 0.0}})
        super().__init__(cfg, teacher.shape_meta)
        self.load_state_dict(teacher.state_dict())
        # outside the module tree: not in state_dict, not trained, not moved by .to() (compute_loss moves it)
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))
        T = cfg.noise.num_train_timesteps
        self.register_buffer("grid", consistency_grid(T, points), persistent=False)
        self.grid_skip = int(self.grid[0]) + 1  # c: training steps between grid points
        lcm = self.sampler.impl  # diffusers' LCMScheduler: the boundary scalings the sampler also applies
        scalings = torch.tensor([lcm.get_scalings_for_boundary_condition_discrete(t) for t in range(T)],
                                dtype=torch.float32)
        self.register_buffer("c_skip", scalings[:, 0].contiguous(), persistent=False)
        self.register_buffer("c_out", scalings[:, 1].contiguous(), persistent=False)
        self.register_buffer("alphas_cumprod", self.noise_scheduler.alphas_cumprod.float().clone(), persistent=False)

    def _predict(self, policy: DiffusionPolicy, x_t: torch.Tensor, t: torch.Tensor, cond):
        """(x0 prediction, clipped as the samplers clip it; noise prediction) of ``policy``'s denoiser at
        per-sample timesteps t."""
        a_t = self.alphas_cumprod[t].view(-1, *([1] * (x_t.ndim - 1)))
        x0, eps = split_prediction(policy.denoiser(x_t, t, cond), x_t, a_t, policy.cfg.noise.prediction_type)
        return (x0.clamp(-1, 1) if self.cfg.noise.clip_sample else x0), eps

    def consistency_fn(self, x_t: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        """f(x_t, t): the student's estimate of where the teacher's ODE from (x_t, t) ends, as LCMScheduler
        computes it (boundary scalings on the clipped x0 prediction)."""
        shape = (-1, *([1] * (x_t.ndim - 1)))
        return self.c_skip[t].view(shape) * x_t + self.c_out[t].view(shape) * self._predict(self, x_t, t,
                                                                                              cond)[0]

    def compute_loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        x0, cond, _ = self.training_inputs(batch)
        teacher = self.teacher
        if teacher.device != x0.device:
            teacher.to(x0.device)
        with torch.no_grad():
            _, teacher_cond, _ = teacher.training_inputs(batch)
        B = x0.shape[0]
        n = torch.randint(0, len(self.grid), (B,), device=x0.device)
        t_s = self.grid[n]
        t_e = (t_s - self.grid_skip).clamp_min(0)
        x_s = self.noise_scheduler.add_noise(x0, torch.randn_like(x0), t_s)
        with torch.no_grad():
            shape = (-1, *([1] * (x0.ndim - 1)))
            a_e = self.alphas_cumprod[t_e].view(shape)
            x0_teacher, eps_teacher = self._predict(teacher, x_s, t_s, teacher_cond)
            x_e = a_e.sqrt() * x0_teacher + (1 - a_e).sqrt() * eps_teacher  # the teacher's DDIM step (eta 0)
            target = self.consistency_fn(x_e, t_e, cond)
        return torch.nn.functional.mse_loss(self.consistency_fn(x_s, t_s, cond), target)

