"""``robodiff image train|sample``: train image models with the one trainer, draw PNG grids from checkpoints.

    robodiff image train --data digits --out runs/digits --minutes 10
    robodiff image train --data digits --model classifier --out runs/clf
    robodiff image sample runs/digits/checkpoints/latest.ckpt --out grid.png --class 7 --guidance 3 \\
        --sampler ddim --steps 20 --n 64 --trajectory strip.png
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from robodiff.diffusion.names import SCHEDULER_NAMES
from robodiff.image.digits import NUM_CLASSES

MODEL_KINDS = {"diffusion": "diffusion", "classifier": "classifier", "noisy-classifier": "noisy_classifier",
               "vae": "vae"}
SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}
VARIANCES = {"fixed": "fixed_small", "fixed-large": "fixed_large", "learned": "learned_range"}


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def save_png(images: "torch.Tensor", path: Path, nrow: int) -> Path:
    """A grid of images in [-1, 1] (N, C, H, W) written atomically (temp file, then rename)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        save_image((images.float() + 1) / 2, tmp, nrow=nrow, padding=1, pad_value=1.0)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the PNG should be readable like any output
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def trajectory_strip(trajectory: "list[torch.Tensor]", rows: int, columns: int = 10) -> "tuple[torch.Tensor, int]":
    """x_t at ``columns`` evenly spaced steps (pure noise ... result) for the first ``rows`` samples."""
    import torch

    pick = torch.linspace(0, len(trajectory) - 1, min(columns, len(trajectory))).round().long().tolist()
    frames = torch.stack([trajectory[i][:rows].clamp(-1, 1) for i in pick], dim=1)  # (rows, cols, C, H, W)
    return frames.flatten(0, 1), len(pick)


def _cmd_train(args) -> int:
    from robodiff.cli import UserError
    from robodiff.image.train import train_image

    model: dict = {"kind": MODEL_KINDS[args.model], "conditioning": args.conditioning}
    if args.channels:
        model["channels"] = args.channels
        model["attention"] = [False] + [True] * (len(model["channels"]) - 1)
    if args.attention:
        model["attention"] = [bool(a) for a in args.attention]
    if args.latent:
        from robodiff.image.train import load_image_model

        if not Path(args.latent).exists():
            raise UserError(f"--latent {args.latent}: no such VAE checkpoint (train one with --model vae)")
        _, vae = load_image_model(args.latent)
        if vae["config"]["model"]["kind"] != "vae":
            raise UserError(f"--latent {args.latent} is a {vae['config']['model']['kind']!r} checkpoint, not a VAE")
        model["latent"] = {"vae_checkpoint": str(Path(args.latent).resolve()),
                           "vae": {"vae": vae["config"]["model"]["vae"]}}
    training = {"batch_size": args.batch_size, "lr": args.lr, "resume": args.resume, "overwrite": args.overwrite,
                "num_threads": args.threads}
    if args.minutes is not None:
        training["max_minutes"] = args.minutes
    if args.steps is not None:
        # a step budget knows its length, so the learning rate decays over it (cosine); a wall-time bound does
        # not, and keeps the constant rate after warm-up
        training.update(max_steps=args.steps, lr_scheduler="cosine")
    cfg = {"output_dir": args.out, "seed": args.seed, "device": args.device,
           "data": {"name": args.data, "size": args.size, "frame_stride": args.frame_stride},
           "model": model,
           "diffusion": {"num_train_timesteps": args.timesteps, "beta_schedule": SCHEDULES[args.schedule],
                         "prediction_type": args.prediction, "variance_type": VARIANCES[args.variance]},
           "training": training}
    try:
        res = train_image(cfg)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(f"trained {res.step} steps; checkpoint {res.latest_checkpoint}; metrics {res.metrics}")
    return 0


def _cmd_sample(args) -> int:
    from robodiff.cli import UserError
    import torch

    from robodiff.image.train import load_image_model

    torch.set_num_threads(args.threads) if args.threads else None
    model, ckpt = load_image_model(args.checkpoint)
    if ckpt["config"]["model"]["kind"] != "diffusion":
        raise UserError(f"{args.checkpoint} is a {ckpt['config']['model']['kind']!r} checkpoint; sample needs a "
                        "diffusion model")
    labels = captions = None
    if model.conditioning == "class":
        labels = torch.full((args.n,), args.cls) if args.cls is not None else torch.arange(args.n) % NUM_CLASSES
    elif model.conditioning == "caption":
        if not args.caption:
            raise UserError('this model is text-conditioned: give --caption "a handwritten seven" (repeatable)')
        captions = [args.caption[i % len(args.caption)] for i in range(args.n)]
    elif args.cls is not None or args.caption:
        raise UserError("this model is unconditional: drop --class/--caption")
    classifier_grad = None
    if args.classifier:
        clf, _ = load_image_model(args.classifier)
        if labels is None:
            raise UserError("classifier guidance needs class labels (a class-conditional model)")
        classifier_grad = clf.guidance(labels)
    traj = [] if args.trajectory else None
    try:
        images = model.generate(args.n, labels=labels, captions=captions, sampler=args.sampler, steps=args.steps,
                                guidance=args.guidance, eta=args.eta, classifier_grad=classifier_grad,
                                classifier_scale=args.classifier_scale if args.classifier else 0.0,
                                dynamic_threshold=args.dynamic_threshold,
                                generator=torch.Generator().manual_seed(args.seed), trajectory=traj, progress=True)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    nrow = NUM_CLASSES if labels is not None and args.cls is None else int(args.n ** 0.5 + 0.999)
    print(f"wrote {save_png(images, args.out, nrow)}")
    if traj is not None:
        strip, cols = trajectory_strip(traj, rows=min(args.n, args.trajectory_rows))
        print(f"wrote {save_png(strip, args.trajectory, cols)} (x_t from pure noise to the sample, left to right)")
    return 0


def register(subparsers) -> None:
    image = subparsers.add_parser("image", help="image diffusion: train on digits / Push-T frames, sample grids",
                                  description="Image diffusion on robodiff's shared core (DDPM/DDIM/DPM-Solver, "
                                              "Improved DDPM, guidance, latent diffusion, text-to-image).")
    sub = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")

    tr = sub.add_parser("train", help="train a denoiser, VAE or digit classifier with the one trainer",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Train an image model. Checkpoints (config + weights + EMA) go to "
                                    "OUT/checkpoints; --resume continues a killed run exactly. Diffusion models "
                                    "train with classifier-free dropout (p_uncond 0.1) so --guidance works at "
                                    "sampling; --variance learned uses Improved DDPM's hybrid loss.")
    tr.add_argument("--data", default="digits", help="'digits' (scikit-learn, offline) or a Push-T replay buffer path")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--model", choices=list(MODEL_KINDS), default="diffusion",
                    help="what to train: the denoiser, a digit classifier (quality metrics), a noisy-x_t "
                         "classifier (classifier guidance) or an AutoencoderKL (latent diffusion)")
    tr.add_argument("--conditioning", choices=["class", "caption", "none"], default="class",
                    help="class labels, captions through a text encoder + cross-attention, or nothing")
    tr.add_argument("--size", type=int, default=16, help="image size in pixels (digits are upsampled from 8)")
    tr.add_argument("--frame-stride", type=int, default=10, help="Push-T: use every k-th frame")
    tr.add_argument("--channels", type=int_list, default="16,32", help="UNet widths per level, comma-separated")
    tr.add_argument("--attention", type=int_list, help="attention per UNet level, comma-separated 0/1 (default: "
                    "every level but the first; e.g. 0,0,1 for cross-attention at the coarsest of three only)")
    tr.add_argument("--latent", metavar="VAE_CKPT", help="diffuse in the latent space of this trained VAE")
    tr.add_argument("--timesteps", type=int, default=1000, help="diffusion training steps T")
    tr.add_argument("--schedule", choices=list(SCHEDULES), default="cosine", help="beta schedule")
    tr.add_argument("--prediction", choices=["epsilon", "v", "sample"], default="epsilon", help="model target")
    tr.add_argument("--variance", choices=list(VARIANCES), default="fixed",
                    help="reverse variance: beta-tilde, beta, or learned (Improved DDPM)")
    tr.add_argument("--minutes", type=float, help="stop after this much wall time")
    tr.add_argument("--steps", type=int, help="stop after this many optimizer steps (the lr then decays over them, "
                    "cosine; with only --minutes it stays constant)")
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    tr.add_argument("--device", default="auto", help="auto, cpu or cuda")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--resume", action="store_true", help="continue OUT/checkpoints/latest.ckpt")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run in OUT")
    tr.set_defaults(func=_cmd_train)

    sa = sub.add_parser("sample", help="draw a PNG grid (and a denoising-trajectory strip) from a checkpoint",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Sample a trained diffusion checkpoint. Class models without --class draw "
                                    "one column per digit.")
    sa.add_argument("checkpoint", help="a diffusion run's .ckpt (e.g. RUN/checkpoints/latest.ckpt)")
    sa.add_argument("--out", required=True, help="PNG grid to write")
    sa.add_argument("--class", dest="cls", type=int, choices=range(NUM_CLASSES), metavar="0-9",
                    help="digit to draw (class models)")
    sa.add_argument("--caption", action="append", help='caption, e.g. "a handwritten seven" (caption models; '
                                                       'repeat to cycle through several)')
    sa.add_argument("--guidance", type=float, default=3.0,
                    help="classifier-free guidance scale w (0: unconditional, 1: conditional, >1: guided)")
    sa.add_argument("--sampler", choices=list(SCHEDULER_NAMES), default="ddim")
    sa.add_argument("--steps", type=int, default=50, help="sampling steps (1..T)")
    sa.add_argument("--eta", type=float, default=0.0, help="DDIM noise (0 = deterministic)")
    sa.add_argument("--n", type=int, default=64, help="number of samples")
    sa.add_argument("--classifier", metavar="NOISY_CLF_CKPT", help="classifier guidance with this noisy classifier")
    sa.add_argument("--classifier-scale", type=float, default=3.0, help="classifier guidance scale s")
    sa.add_argument("--dynamic-threshold", type=float, metavar="Q",
                    help="Imagen dynamic thresholding at quantile Q (e.g. 0.995) for high guidance")
    sa.add_argument("--trajectory", metavar="PNG", help="also write x_t at 10 steps, noise to sample, per row")
    sa.add_argument("--trajectory-rows", type=int, default=10)
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--threads", type=int, default=1)
    sa.set_defaults(func=_cmd_sample)
