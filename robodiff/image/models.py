"""Image models on the shared diffusion core: the denoiser (pixel or latent, unconditional, class- or
caption-conditioned), the caption encoder, the VAE, and the digit classifiers that guide and score samples.

All are built by :func:`build_image_model` from the run config (``cfg["model"]["kind"]`` picks which), so
the one trainer trains each of them and ``load_model(ckpt, build_image_model)`` rebuilds each from its
checkpoint. Training goes through ``robodiff.diffusion.diffusion_loss``, sampling through
``robodiff.diffusion.sample``: nothing here has its own loop.

Config sections (plain dicts; missing keys take the defaults below)::

    data:      name ("digits" | replay buffer path), size, val_fraction, seed   (see robodiff.image.data)
    model:     kind ("diffusion" | "classifier" | "noisy_classifier" | "vae"), unet / vae / text widths,
               conditioning ("none" | "class" | "caption"), p_uncond, latent (VAE architecture + checkpoint)
    diffusion: the forward process (num_train_timesteps, beta_schedule, prediction_type, variance_type)
               and vlb_weight (Improved DDPM's hybrid loss when the variance is learned)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from omegaconf import OmegaConf
from torch import nn
from tqdm.auto import tqdm

from robodiff.diffusion import HYBRID_VLB_WEIGHT, bits_per_dim, diffusion_loss, make_scheduler, sample
from robodiff.diffusion.sampling import ClassifierGrad
from robodiff.image.captions import MAX_TOKENS, VOCABULARY, CaptionTokenizer
from robodiff.image.digits import NUM_CLASSES
from robodiff.image.data import DEFAULT_DATA, DIGITS

NULL_CLASS = NUM_CLASSES  # the "no label" class classifier-free guidance trains with p_uncond
LATENT_RANGE_QUANTILE = 0.999  # latents are scaled so this share of their values lies in [-1, 1]

DEFAULT_MODEL = {
    "kind": "diffusion",
    "conditioning": "class",
    "p_uncond": 0.1,
    "channels": [32, 64],           # UNet widths per resolution (each level halves the resolution)
    "attention": [False, True],     # self-attention (class/none) or cross-attention (caption) per level
    "layers_per_block": 1,
    "norm_groups": 8,
    "text": {"width": 64, "layers": 2, "heads": 4},
    "vae": {"channels": [32, 64], "latent_channels": 4, "kl_weight": 1.0e-4},
    "classifier": {"channels": [32, 64], "feature_dim": 64},
    "latent": None,                 # {"vae_checkpoint": path, "vae": <the VAE run's model section>}
}
DEFAULT_DIFFUSION = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",   # Improved DDPM's cosine schedule; "linear" is DDPM's
    "prediction_type": "epsilon",
    "variance_type": "fixed_small",          # "learned_range": Improved DDPM's learned variance
    "vlb_weight": None,                      # null: HYBRID_VLB_WEIGHT if the variance is learned, else 0
}
NOISE_KEYS = ("num_train_timesteps", "beta_schedule", "prediction_type", "variance_type")


def _merge(defaults: dict, given: dict | None, where: str) -> dict:
    """``given`` over ``defaults`` (omegaconf's deep merge); a key the defaults lack is a typo, not a no-op."""
    for key, value in (given or {}).items():
        if key not in defaults:
            raise ValueError(f"unknown config key '{where}.{key}'; valid keys: {', '.join(sorted(defaults))}")
        if isinstance(value, dict) and isinstance(defaults[key], dict):
            _merge(defaults[key], value, f"{where}.{key}")
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(defaults), OmegaConf.create(given or {})))


def resolve_config(cfg: dict) -> dict:
    """``cfg`` with the data/model/diffusion sections completed from the defaults (typos rejected)."""
    cfg = dict(cfg)
    cfg["data"] = _merge(DEFAULT_DATA, cfg.get("data"), "data")
    cfg["model"] = _merge(DEFAULT_MODEL, cfg.get("model"), "model")
    cfg["diffusion"] = _merge(DEFAULT_DIFFUSION, cfg.get("diffusion"), "diffusion")
    return cfg


def image_shape(data_cfg: dict) -> tuple[int, int, int]:
    """(C, S, S) of a data section: grey digits or RGB Push-T frames unless ``channels`` says otherwise."""
    channels = data_cfg.get("channels") or (1 if data_cfg["name"] == DIGITS else 3)
    return (int(channels), int(data_cfg["size"]), int(data_cfg["size"]))


def noise_config(cfg: dict) -> dict:
    return {k: cfg["diffusion"][k] for k in NOISE_KEYS}


# ------------------------------------------------------------------------------------------- building blocks
class TextEncoder(nn.Module):
    """A small transformer over caption tokens, trained with the denoiser; its states feed cross-attention."""

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, max_tokens: int = MAX_TOKENS):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.zeros(max_tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, L) -> states (B, L, width) and the mask of real tokens (B, L)."""
        mask = tokens != VOCABULARY.index("<pad>")
        h = self.encoder(self.embed(tokens) + self.pos[: tokens.shape[1]], src_key_padding_mask=~mask)
        return self.norm(h), mask


def build_unet(m: dict, in_channels: int, out_channels: int, size: int, cross_attention_dim: int | None):
    """diffusers' UNet2DModel (class embedding for labels + the null class), or UNet2DConditionModel with
    cross-attention on caption states where ``cross_attention_dim`` is given."""
    n = len(m["channels"])
    if len(m["attention"]) != n or size % 2 ** (n - 1):
        raise ValueError(f"model.channels {m['channels']} and model.attention {m['attention']} need one entry per "
                         f"level and an image size divisible by 2^(levels-1) (size {size})")
    common = dict(sample_size=size, in_channels=in_channels, out_channels=out_channels,
                  block_out_channels=tuple(m["channels"]), layers_per_block=m["layers_per_block"],
                  norm_num_groups=m["norm_groups"])
    if cross_attention_dim is not None:
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in m["attention"])
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(m["attention"]))
        return UNet2DConditionModel(down_block_types=down, up_block_types=up, cross_attention_dim=cross_attention_dim,
                                    attention_head_dim=8, **common)
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in m["attention"])
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(m["attention"]))
    classes = NUM_CLASSES + 1 if m["conditioning"] == "class" else None
    return UNet2DModel(down_block_types=down, up_block_types=up, num_class_embeds=classes, attention_head_dim=16,
                       **common)


def build_autoencoder(v: dict, channels: int, size: int) -> AutoencoderKL:
    n = len(v["channels"])
    return AutoencoderKL(in_channels=channels, out_channels=channels, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(v["channels"]),
                         latent_channels=v["latent_channels"], layers_per_block=1, norm_num_groups=8,
                         sample_size=size)


# ------------------------------------------------------------------------------------------- the denoiser
class ImageDiffusion(nn.Module):
    """A 2D-UNet denoiser of images or VAE latents with its noise process.

    ``denoise(x, t, cond)`` is the core's denoiser signature; ``cond`` is ``{"label": (B,)}`` (class),
    ``{"tokens": (B, L)}`` (caption) or None. Classifier-free guidance comes from training with the
    condition replaced by the null class / the empty caption with probability ``p_uncond``.
    """

    def __init__(self, cfg: dict, vae: AutoencoderKL | None = None, latent_scale: float = 1.0):
        super().__init__()
        m, self.noise = cfg["model"], noise_config(cfg)
        self.conditioning, self.p_uncond = m["conditioning"], float(m["p_uncond"])
        if self.conditioning not in ("none", "class", "caption"):
            raise ValueError(f"model.conditioning {self.conditioning!r}: use 'none', 'class' or 'caption'")
        self.pixel_shape = image_shape(cfg["data"])
        self.vae = vae
        if vae is not None:
            vae.requires_grad_(False)
            down = 2 ** (len(vae.config.block_out_channels) - 1)
            self.data_shape = (vae.config.latent_channels, self.pixel_shape[1] // down, self.pixel_shape[2] // down)
        else:
            self.data_shape = self.pixel_shape
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale)))
        self.scheduler = make_scheduler("ddpm", **self.noise)  # the forward process, for training and the bound
        vw = cfg["diffusion"]["vlb_weight"]
        self.vlb_weight = float(HYBRID_VLB_WEIGHT if vw is None and self.scheduler.learned_variance else vw or 0.0)
        out = self.data_shape[0] * (2 if self.scheduler.learned_variance else 1)
        text = m["text"]
        self.text = (TextEncoder(len(VOCABULARY), text["width"], text["layers"], text["heads"])
                     if self.conditioning == "caption" else None)
        self.unet = build_unet(m, self.data_shape[0], out, self.data_shape[1],
                               text["width"] if self.text is not None else None)
        self.tokenizer = CaptionTokenizer() if self.text is not None else None

    # -- the denoiser the core calls
    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        if self.conditioning == "class":
            return self.unet(x, t, class_labels=cond["label"]).sample
        if self.conditioning == "caption":
            states, mask = self.text(cond["tokens"])
            return self.unet(x, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        return self.unet(x, t).sample

    def null_condition(self, n: int, device) -> dict | None:
        if self.conditioning == "class":
            return {"label": torch.full((n,), NULL_CLASS, dtype=torch.long, device=device)}
        if self.conditioning == "caption":
            return {"tokens": self.tokenizer([""] * n).to(device)}
        return None

    def condition(self, batch: dict, drop: float = 0.0) -> dict | None:
        """The batch's condition; each sample's replaced by the null one with probability ``drop``."""
        if self.conditioning == "none":
            return None
        key = "label" if self.conditioning == "class" else "tokens"
        cond = batch[key]
        if key == "label" and bool((cond < 0).any()):
            raise ValueError("class conditioning needs labels; this data has none (use conditioning 'caption' "
                             "or 'none')")
        if drop > 0:
            null = self.null_condition(len(cond), cond.device)[key]
            dropped = torch.rand(len(cond), device=cond.device) < drop
            cond = torch.where(dropped.view(-1, *([1] * (cond.ndim - 1))), null, cond)
        return {key: cond}

    # -- latent space
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return images
        return self.vae.encode(images).latent_dist.mode() * self.latent_scale

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return x
        return self.vae.decode(x / self.latent_scale).sample.clamp(-1, 1)

    # -- training and evaluation
    def compute_loss(self, batch: dict) -> torch.Tensor:
        x0 = batch["latent"] if "latent" in batch else self.encode(batch["image"])
        return diffusion_loss(self.denoise, x0, self.condition(batch, self.p_uncond), self.scheduler,
                              vlb_weight=self.vlb_weight)

    def bits_per_dim(self, batch: dict, generator: torch.Generator | None = None, progress: bool = False):
        """Exact variational bound on held-out images (pixel models only), per image, in bits/dim."""
        if self.vae is not None:
            raise ValueError("bits/dim is defined for pixel-space models; this one diffuses VAE latents")
        return bits_per_dim(self.denoise, batch["image"], self.condition(batch), self.scheduler,
                            generator=generator, progress=progress)

    def sampler(self, name: str = "ddim", eta: float = 0.0, dynamic_threshold: float | None = None):
        """A scheduler for sampling over this model's forward process (x_0 clipped to [-1, 1], the range of
        pixels and of the scaled latents, unless dynamic thresholding replaces the clipping)."""
        clip = dynamic_threshold is None
        return make_scheduler(name, **self.noise, eta=eta, clip_sample=clip, dynamic_threshold=dynamic_threshold)

    @torch.no_grad()
    def generate(self, n: int, *, labels: torch.Tensor | None = None, captions: list[str] | None = None,
                 sampler: str = "ddim", steps: int = 50, guidance: float = 1.0, eta: float = 0.0,
                 classifier_grad: ClassifierGrad | None = None, classifier_scale: float = 0.0,
                 dynamic_threshold: float | None = None, generator: torch.Generator | None = None,
                 trajectory: list | None = None, progress: bool = False) -> torch.Tensor:
        """n images in [-1, 1] (B, C, S, S) from the one sampling loop.

        labels / captions: the condition (n of them); guidance: classifier-free scale w (1 = plain
        conditional, 0 = unconditional); classifier_grad/scale: classifier guidance; trajectory: filled
        with the decoded x_t of every step."""
        device = self.latent_scale.device
        if self.conditioning == "class":
            if labels is None:
                raise ValueError("this model is class-conditional: give labels (e.g. --class 7)")
            cond = {"label": torch.as_tensor(labels, device=device).long().expand(n)}
        elif self.conditioning == "caption":
            if captions is None:
                raise ValueError('this model is caption-conditional: give captions (e.g. --caption "a handwritten '
                                 'seven")')
            captions = list(captions) * n if len(captions) == 1 else list(captions)
            if len(captions) != n:
                raise ValueError(f"give one caption or one per sample ({n}); got {len(captions)}")
            cond = {"tokens": self.tokenizer(captions).to(device)}
        else:
            if labels is not None or captions is not None or guidance != 1.0:
                raise ValueError("this model is unconditional: no labels, captions or classifier-free guidance")
            cond = None
        uncond = self.null_condition(n, device)
        if guidance == 0.0:  # the unconditional model alone
            cond, guidance = uncond, 1.0
        if classifier_scale and self.vae is not None:
            raise ValueError("classifier guidance needs a classifier of the diffused data; this model diffuses "
                             "latents (use a pixel-space model)")
        latents = [] if trajectory is not None else None
        denoise = self.denoise
        if progress:  # a bar over the loop's denoiser calls (one per step)
            bar = tqdm(total=steps, desc=f"{sampler}-{steps}", unit="step", leave=False)

            def denoise(x, t, c):
                bar.update()
                return self.denoise(x, t, c)
        x = sample(denoise, (n, *self.data_shape), cond, self.sampler(sampler, eta, dynamic_threshold), steps,
                   generator, guidance_scale=guidance, uncond=uncond, classifier_grad=classifier_grad,
                   classifier_scale=classifier_scale, device=device, trajectory=latents)
        if progress:
            bar.close()
        if trajectory is not None:
            trajectory.extend(self.decode(z.to(device)).cpu() for z in latents)
        return self.decode(x)


# ------------------------------------------------------------------------------------------- the VAE
class ImageVAE(nn.Module):
    """diffusers' AutoencoderKL trained here: reconstruction MSE + kl_weight * KL to N(0, I)."""

    def __init__(self, cfg: dict):
        super().__init__()
        v = cfg["model"]["vae"]
        self.kl_weight = float(v["kl_weight"])
        c, s, _ = image_shape(cfg["data"])
        self.vae = build_autoencoder(v, c, s)

    def compute_loss(self, batch: dict) -> torch.Tensor:
        x = batch["image"]
        post = self.vae.encode(x).latent_dist
        recon = self.vae.decode(post.sample()).sample
        return F.mse_loss(recon, x) + self.kl_weight * post.kl().mean() / x[0].numel()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)


# ------------------------------------------------------------------------------------------- classifiers
class DigitClassifier(nn.Module):
    """A small CNN over digit images; ``noisy`` adds a timestep embedding so it classifies x_t at any noise
    level (for classifier guidance). ``features`` is the space the Frechet distance is measured in."""

    def __init__(self, cfg: dict, noisy: bool):
        super().__init__()
        c = cfg["model"]["classifier"]
        ch, fdim = c["channels"], c["feature_dim"]
        in_ch = image_shape(cfg["data"])[0]
        self.noisy = noisy
        self.conv_in = nn.Conv2d(in_ch, ch[0], 3, padding=1)
        self.time = nn.Sequential(Timesteps(ch[0], True, 0), TimestepEmbedding(ch[0], ch[0])) if noisy else None
        layers, prev = [], ch[0]
        for w in ch:
            layers += [nn.GroupNorm(8, prev), nn.SiLU(), nn.Conv2d(prev, w, 3, padding=1), nn.GroupNorm(8, w),
                       nn.SiLU(), nn.Conv2d(w, w, 3, padding=1, stride=2)]
            prev = w
        self.body = nn.Sequential(*layers)
        self.feature = nn.Linear(prev, fdim)
        self.head = nn.Linear(fdim, NUM_CLASSES)
        self.scheduler = make_scheduler("ddpm", **noise_config(cfg)) if noisy else None

    def features(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_in(x)
        if self.noisy:
            h = h + self.time(t).to(h.dtype)[:, :, None, None]
        h = self.body(h).mean(dim=(2, 3))
        return F.silu(self.feature(h))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, t))

    def compute_loss(self, batch: dict) -> torch.Tensor:
        x, y = batch["image"], batch["label"]
        if not self.noisy:
            return F.cross_entropy(self(x), y)
        t = torch.randint(0, self.scheduler.num_train_timesteps, (len(x),), device=x.device)
        x_t = self.scheduler.add_noise(x, torch.randn_like(x), t)
        return F.cross_entropy(self(x_t, t), y)

    def guidance(self, labels: torch.Tensor) -> ClassifierGrad:
        """grad_x log p(labels | x_t) for the core's classifier-guidance hook ("Diffusion Models Beat GANs")."""
        if not self.noisy:
            raise ValueError("classifier guidance needs a classifier trained on noisy x_t (kind noisy_classifier)")

        def grad(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                logp = self(x, t).log_softmax(-1)[torch.arange(len(x)), labels.to(x.device)].sum()
                return torch.autograd.grad(logp, x)[0]
        return grad


# ------------------------------------------------------------------------------------------- the builder
def _load_vae(cfg: dict, dataset) -> tuple[AutoencoderKL, float]:
    """The latent model's frozen VAE: architecture from cfg; weights from its checkpoint when training
    (dataset given), from this model's own state dict when loading.

    Latents are scaled so that LATENT_RANGE_QUANTILE of their values lie in [-1, 1], like pixels, so the same
    x_0 clipping keeps every sampler stable. (Stable Diffusion scales to unit std and does not clip; with the
    cosine schedule's near-zero terminal alpha, an unclipped eps model's first x_0 estimate explodes:
    measured here, sampled latents reached std ~2000.)"""
    from robodiff.training.checkpoint import load_model

    lat = cfg["model"]["latent"]
    vae_cfg = resolve_config({"data": cfg["data"], "model": lat["vae"]})
    vae = build_autoencoder(vae_cfg["model"]["vae"], *image_shape(cfg["data"])[:2])
    if dataset is None:
        return vae, 1.0
    trained, _ = load_model(Path(lat["vae_checkpoint"]), build_image_model)
    vae.load_state_dict(trained.vae.state_dict())
    with torch.no_grad():
        images = dataset.__getitems__(range(min(len(dataset), 512)))["image"]
        z = vae.encode(images).latent_dist.mode()
    return vae, 1.0 / float(torch.quantile(z.abs().flatten(), LATENT_RANGE_QUANTILE))


def build_image_model(cfg: dict, dataset=None) -> nn.Module:
    """The trainer's model builder for every image model kind (``cfg["model"]["kind"]``)."""
    cfg = resolve_config(cfg)
    kind = cfg["model"]["kind"]
    if dataset is not None and tuple(dataset.image_shape) != image_shape(cfg["data"]):
        raise ValueError(f"dataset images have shape {dataset.image_shape}, the config says {image_shape(cfg['data'])}")
    if kind == "diffusion":
        if cfg["model"]["latent"]:
            vae, scale = _load_vae(cfg, dataset)
            return ImageDiffusion(cfg, vae, scale)
        return ImageDiffusion(cfg)
    if kind == "vae":
        return ImageVAE(cfg)
    if kind in ("classifier", "noisy_classifier"):
        return DigitClassifier(cfg, noisy=kind == "noisy_classifier")
    raise ValueError(f"model.kind {kind!r}: use 'diffusion', 'vae', 'classifier' or 'noisy_classifier'")
