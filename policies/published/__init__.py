"""Trained policies shipped with the package, each a regular robodiff checkpoint (fp16 weights, EMA only).

    python scripts/eval.py policies/published/pusht_lowdim_unet_small.ckpt --output outputs/eval_published

``PUSHT_LOWDIM`` is the lowdim (keypoint) PushT UNet trained on the reference human demonstrations;
BENCHMARKS.md ("Published lowdim policy") has its training command, its 50-seed score and how it was made
(scripts/publish_policy.py).
"""

from pathlib import Path

PUSHT_LOWDIM = Path(__file__).resolve().parent / "pusht_lowdim_unet_small.ckpt"

__all__ = ["PUSHT_LOWDIM"]
