"""The diffusion core shared by action, image and text models: schedulers, the sampling loop, the loss.

    from robodiff.diffusion import make_scheduler, sample, diffusion_loss
    sched = make_scheduler("ddim", num_train_timesteps=100, prediction_type="epsilon")
    loss = diffusion_loss(denoiser, x0, cond, sched)          # training
    x = sample(denoiser, x0.shape, cond, sched, steps=10)     # inference
"""

from robodiff.diffusion.losses import HYBRID_VLB_WEIGHT, bits_per_dim, diffusion_loss
from robodiff.diffusion.masked import (
    GenerationSettingsError,
    MaskedDiffusion,
    ReverseProcess,
    masked_diffusion_loss,
)
from robodiff.diffusion.sampling import sample
from robodiff.diffusion.schedulers import (
    SCHEDULER_NAMES,
    DiffusersScheduler,
    NoiseScheduler,
    SpacedDDIMScheduler,
    consistency_grid,
    make_scheduler,
    split_prediction,
)

__all__ = [
    "SCHEDULER_NAMES",
    "DiffusersScheduler",
    "GenerationSettingsError",
    "MaskedDiffusion",
    "NoiseScheduler",
    "ReverseProcess",
    "SpacedDDIMScheduler",
    "HYBRID_VLB_WEIGHT",
    "bits_per_dim",
    "consistency_grid",
    "diffusion_loss",
    "make_scheduler",
    "masked_diffusion_loss",
    "sample",
    "split_prediction",
]
