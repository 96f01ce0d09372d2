"""Denoisers and observation encoders. Every denoiser is called as ``denoiser(x (B,T,D), t (B,), cond)``."""

from robodiff.models.obs_encoder import ObsEncoder, ImageEncoder, replace_batchnorm_with_groupnorm
from robodiff.models.transformer import TransformerForDiffusion
from robodiff.models.unet1d import ConditionalUnet1D

__all__ = [
    "ConditionalUnet1D",
    "ImageEncoder",
    "ObsEncoder",
    "TransformerForDiffusion",
    "replace_batchnorm_with_groupnorm",
]
