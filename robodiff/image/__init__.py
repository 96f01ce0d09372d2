"""Image diffusion on the shared core: digits and Push-T frames, DDPM/DDIM/DPM-Solver, Improved DDPM,
classifier-free and classifier guidance, latent diffusion, text-to-image.

    from robodiff.image import train_image, load_image_model
    result = train_image({"output_dir": "runs/digits", "training": {"max_minutes": 10}})
    model, _ = load_image_model(result.latest_checkpoint)
    images = model.generate(16, labels=torch.arange(16) % 10, sampler="ddim", steps=20, guidance=3.0)
"""

from robodiff.lazy import lazy_exports

_EXPORTS = {"load_image_model": "train", "train_image": "train"}  # imported on first use (robodiff.lazy)
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
