"""Training any image model (denoiser, VAE, classifier) with the one trainer, and what it evaluates.

    result = train_image({"output_dir": "runs/digits", "model": {"conditioning": "class"},
                          "training": {"max_minutes": 10}})

``train_image`` completes the config (image defaults, then the trainer's), builds the dataset and hands
both to ``robodiff.training.train`` with ``build_image_model``; there is no loop here.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from robodiff.image.data import ImageDataset, make_image_dataset
from robodiff.image.models import DigitClassifier, ImageDiffusion, ImageVAE, build_image_model, resolve_config
from robodiff.training import TrainResult, load_model, train

# what a tiny image model on a shared CPU wants instead of the policy defaults
IMAGE_TRAINING = {"batch_size": 128, "lr": 5.0e-4, "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 100,
                  "weight_decay": 0.0, "num_epochs": 400, "val_every": 10, "rollout_every": None,
                  "checkpoint": {"every": 20, "every_steps": 200, "top_k": 1, "monitor": "val/loss"},
                  "ema": {"power": 0.75, "max_value": 0.999}}


def _deep_update(base: dict, given: dict) -> dict:
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(given)))


def image_config(cfg: dict) -> dict:
    """The run config with the image sections resolved and the image training defaults under the given ones."""
    cfg = resolve_config(cfg)
    cfg.setdefault("seed", 0)
    cfg.setdefault("device", "auto")
    cfg["training"] = _deep_update(IMAGE_TRAINING, cfg.get("training") or {})
    cfg.setdefault("logging", {"tensorboard": False})
    return cfg


def evaluator(model_kind: str, val: ImageDataset | None):
    """test/<metric> for the trainer: held-out accuracy (classifiers) or reconstruction MSE (VAE)."""
    if val is None or model_kind == "diffusion":
        return None
    batch = val.__getitems__(range(len(val)))

    @torch.no_grad()
    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        x = batch["image"].to(device)
        if isinstance(model, ImageVAE):
            return {"neg_recon_mse": -float(((model.reconstruct(x) - x) ** 2).mean())}
        assert isinstance(model, DigitClassifier)
        if model.noisy:  # accuracy at a fixed spread of noise levels
            g = torch.Generator().manual_seed(0)
            t = torch.randint(0, model.scheduler.num_train_timesteps, (len(x),), generator=g).to(device)
            x = model.scheduler.add_noise(x, torch.randn(x.shape, generator=g).to(device), t)
            return {"accuracy": float((model(x, t).argmax(-1) == batch["label"].to(device)).float().mean())}
        return {"accuracy": float((model(x).argmax(-1) == batch["label"].to(device)).float().mean())}
    return evaluate


def train_image(cfg: dict) -> TrainResult:
    cfg = image_config(cfg)
    kind = cfg["model"]["kind"]
    dataset = make_image_dataset(cfg["data"])
    if kind == "diffusion" and cfg["model"]["latent"]:
        # encode the training images once with the frozen VAE instead of at every step
        encoder: ImageDiffusion = build_image_model(cfg, dataset)
        with torch.no_grad():
            dataset.latents = torch.cat([encoder.encode(dataset.__getitems__(chunk)["image"])
                                         for chunk in torch.arange(len(dataset)).split(256)])
    evaluate = evaluator(kind, dataset.get_validation_dataset())
    if evaluate is not None:
        monitor = "test/neg_recon_mse" if kind == "vae" else "test/accuracy"
        cfg["training"] = _deep_update(cfg["training"], {"checkpoint": {"monitor": monitor},
                                                         "rollout_every": cfg["training"]["rollout_every"] or 10})
    return train(cfg, build_image_model, dataset, evaluate)


def load_image_model(path, map_location="cpu"):
    """(model, checkpoint) of any image run, EMA weights."""
    return load_model(path, build_image_model, ema=True, map_location=map_location)
