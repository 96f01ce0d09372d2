"""The diffusion core shared by action, image and text models: schedulers, the sampling loop, the loss.

    from robodiff.diffusion import make_scheduler, sample, diffusion_loss
    sched = make_scheduler("ddim", num_train_timesteps=100, prediction_type="epsilon")
    loss = diffusion_loss(denoiser, x0, cond, sched)          # training
    x = sample(denoiser, x0.shape, cond, sched, steps=10)     # inference

Names are imported on first use (robodiff.lazy), so the constants in robodiff.diffusion.names stay cheap.
"""

from robodiff.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["HYBRID_VLB_WEIGHT", "bits_per_dim", "diffusion_loss"], "losses"),
    **dict.fromkeys(["GenerationSettingsError", "MaskedDiffusion", "ReverseProcess", "masked_diffusion_loss"], "masked"),
    "sample": "sampling",
    **dict.fromkeys(["DiffusersScheduler", "NoiseScheduler", "SpacedDDIMScheduler", "consistency_grid",
                     "make_scheduler", "split_prediction"], "schedulers"),
    **dict.fromkeys(["SCHEDULER_NAMES", "REMASKING"], "names"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
