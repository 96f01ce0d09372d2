"""Shrink a training checkpoint into a publishable policy file: EMA weights only, in fp16.

    robodiff publish outputs/RUN/checkpoints/latest.ckpt policies/published/pusht_lowdim_unet_small.ckpt

The result is a regular robodiff checkpoint (same format, same config), so `robodiff eval FILE` evaluates
it as it is; the optimizer state, the raw (non-EMA) weights and the RNG states a resumed run would need are
dropped, and the network's float weights are stored as float16 (halving the file; they load back into the
float32 policy). The normalizer's scales and offsets stay float32. Written atomically; refuses a file over
--max-mb.
"""

from __future__ import annotations

import sys


def published_state(ckpt: dict) -> dict:
    """The EMA (else raw) weights with network floats in fp16 and the normalizer untouched."""
    state = ckpt.get("ema_model") or ckpt["model"]
    return {k: (v.half() if v.is_floating_point() and not k.startswith("normalizer.") else v)
            for k, v in state.items()}


def add_arguments(ap) -> None:
    ap.add_argument("checkpoint", help="a .ckpt written by scripts/train.py")
    ap.add_argument("output", help="where to write the published file")
    ap.add_argument("--max-mb", type=float, default=10.0, help="refuse to write a larger file (default 10)")


def run(args) -> int:
    import io

    import torch

    from robodiff.training.checkpoint import CheckpointError, atomic_save, load_checkpoint, make_checkpoint

    try:
        ckpt = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = make_checkpoint(ckpt["config"], model=published_state(ckpt), ema_model=None,
                          progress={k: ckpt["progress"][k] for k in ("step", "epoch", "elapsed_s")},
                          metrics=ckpt.get("metrics", {}), source=str(args.checkpoint))
    buf = io.BytesIO()
    torch.save(out, buf)
    mb = buf.tell() / 2**20
    if mb > args.max_mb:
        print(f"error: the published file would be {mb:.1f} MB > --max-mb {args.max_mb:g}", file=sys.stderr)
        return 2
    atomic_save(out, args.output)
    print(f"wrote {args.output} ({mb:.2f} MB, step {out['progress']['step']}); evaluate it with:\n"
          f"    python scripts/eval.py {args.output} --output outputs/eval_published")
    return 0

