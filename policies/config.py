"""Diffusion-policy configuration: one validated dataclass tree, built from and saved as a plain dict.

The policy is configured by denoiser ("unet" | "transformer") x conditioning ("global": observations steer
the denoiser through FiLM / cross-attention | "inpaint": observation features are written into the
trajectory and kept fixed while sampling) x observations (whatever ``shape_meta`` lists: low-dim, images or
both). Bad values and bad combinations fail here, before any model is built, with the key and the fix.

Timeline (n_obs_steps To=2, n_action_steps Na=8, horizon H=16)::

    obs:     |o0|o1|                                      the last To observations condition the chunk
    chunk:   |a0|a1|a2|a3|a4|a5|a6|a7|a8|a9|..........|a15|  H actions, a_i taken after o_i
    execute:    |a1|a2|a3|a4|a5|a6|a7|a8|                 Na actions from the current step To-1, then re-plan
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from robodiff.diffusion import SCHEDULER_NAMES
from robodiff.diffusion.schedulers import PREDICTION_TYPES
from robodiff.models.obs_encoder import BACKBONES

DENOISERS = ("unet", "transformer")
CONDITIONINGS = ("global", "inpaint")


class PolicyConfigError(ValueError):
    """A policy config value or combination that cannot work; the message names the key and the fix."""


@dataclass
class UnetConfig:
    down_dims: list[int] = field(default_factory=lambda: [256, 512, 1024])
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 256


@dataclass
class TransformerConfig:
    n_layer: int = 8
    n_head: int = 4
    n_emb: int = 256
    p_drop_emb: float = 0.0
    p_drop_attn: float = 0.01
    causal_attn: bool = True


@dataclass
class ObsEncoderConfig:
    """Vision trunk per camera (ignored for low-dim observations)."""

    backbone: str = "robomimic"  # robomimic ResNet18 + SpatialSoftmax | "resnet18" (torchvision, avg pool) | "shallow"
    resize_shape: list[int] | None = None  # [H, W]: resize camera images to this first (then crop)
    crop_shape: list[int] | None = field(default_factory=lambda: [84, 84])
    num_keypoints: int = 32
    feature_dim: int = 64


@dataclass
class NoiseConfig:
    """The training forward process; every sampler reuses it."""

    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    consistency_points: Optional[int] = None  # a distilled student's consistency grid (null: T // 5, at most 50)


@dataclass
class SamplerConfig:
    """Inference only: change freely after training (``policy.set_sampler``)."""

    name: str = "ddpm"
    steps: int = 100
    eta: float = 0.0


@dataclass
class PolicyConfig:
    denoiser: str = "unet"
    conditioning: str = "global"
    horizon: int = 16
    n_obs_steps: int = 2
    n_action_steps: int = 8
    obs_keys: list[str] | None = None  # None: every observation of the task's shape_meta
    unet: UnetConfig = field(default_factory=UnetConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    obs_encoder: ObsEncoderConfig = field(default_factory=ObsEncoderConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ dict round trip
    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | "PolicyConfig" | None) -> "PolicyConfig":
        if isinstance(cfg, PolicyConfig):
            return cls.from_dict(cfg.to_dict())
        return _build(cls, dict(cfg or {}), "policy")

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict that ``from_dict`` turns back into this config."""
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        _choice("denoiser", self.denoiser, DENOISERS)
        _choice("conditioning", self.conditioning, CONDITIONINGS)
        _choice("obs_encoder.backbone", self.obs_encoder.backbone, BACKBONES)
        _choice("sampler.name", self.sampler.name, SCHEDULER_NAMES)
        _choice("noise.prediction_type", self.noise.prediction_type, tuple(PREDICTION_TYPES))
        for key in ("horizon", "n_obs_steps", "n_action_steps"):
            if int(getattr(self, key)) < 1:
                raise PolicyConfigError(f"policy.{key} must be >= 1, got {getattr(self, key)}")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise PolicyConfigError(
                f"n_obs_steps - 1 + n_action_steps = {self.n_obs_steps - 1 + self.n_action_steps} exceeds "
                f"horizon={self.horizon}: the executed actions start at the current step (n_obs_steps - 1); "
                f"raise horizon or lower n_action_steps")
        if not 1 <= self.sampler.steps <= self.noise.num_train_timesteps:
            raise PolicyConfigError(f"sampler.steps must be in [1, noise.num_train_timesteps="
                                    f"{self.noise.num_train_timesteps}], got {self.sampler.steps}")
        if self.denoiser == "unet":
            levels = len(self.unet.down_dims)
            factor = 2 ** (levels - 1)
            if levels < 1 or self.horizon % factor:
                raise PolicyConfigError(
                    f"horizon={self.horizon} does not fit unet.down_dims={list(self.unet.down_dims)}: a {levels}-level "
                    f"U-Net halves the horizon {levels - 1} times, so it must be divisible by {factor}")
            bad = [d for d in self.unet.down_dims if d % self.unet.n_groups]
            if bad:
                raise PolicyConfigError(f"unet.down_dims entries {bad} are not divisible by unet.n_groups="
                                        f"{self.unet.n_groups} (GroupNorm)")
        if self.denoiser == "transformer" and self.transformer.n_emb % self.transformer.n_head:
            raise PolicyConfigError(f"transformer.n_emb={self.transformer.n_emb} must be divisible by "
                                    f"transformer.n_head={self.transformer.n_head}")

    def check_shape_meta(self, shape_meta: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        """The (shape, type) of each observation this policy uses, after checking ``shape_meta`` against it."""
        if "obs" not in shape_meta or "action" not in shape_meta:
            raise PolicyConfigError("shape_meta needs 'obs' and 'action' entries, e.g. {'obs': {'keypoint': "
                                    "{'shape': [20], 'type': 'lowdim'}}, 'action': {'shape': [2]}}")
        available = dict(shape_meta["obs"])
        keys = list(self.obs_keys) if self.obs_keys is not None else list(available)
        if not keys:
            raise PolicyConfigError("the policy has no observations: shape_meta['obs'] / policy.obs_keys is empty")
        out = {}
        for key in keys:
            if key not in available:
                raise PolicyConfigError(f"policy.obs_keys names {key!r}, which shape_meta['obs'] lacks; "
                                        f"available: {list(available)}")
            meta = available[key]
            typ = meta.get("type", "lowdim")
            if typ not in ("rgb", "lowdim"):
                raise PolicyConfigError(f"shape_meta['obs'][{key!r}]['type'] is {typ!r}; use 'rgb' or 'lowdim'")
            shape = tuple(int(s) for s in meta["shape"])
            if typ == "rgb" and len(shape) != 3:
                raise PolicyConfigError(f"rgb observation {key!r} needs shape [C, H, W], got {list(shape)}")
            out[key] = (shape, typ)
        action_shape = list(shape_meta["action"]["shape"])
        if len(action_shape) != 1:
            raise PolicyConfigError(f"shape_meta['action']['shape'] must be [action_dim], got {action_shape}")
        return out


def _choice(key: str, value: Any, choices) -> None:
    if value not in choices:
        raise PolicyConfigError(f"policy.{key}={value!r} is not one of {list(choices)}")


def _build(cls, values: dict[str, Any], where: str):
    """Instantiate dataclass ``cls`` from a dict, recursing into nested dataclasses; unknown keys are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {list(fields)}"
        raise PolicyConfigError(f"unknown config key {where}.{k}{hint}")
    kwargs = {}
    for name, value in values.items():
        sub = _NESTED.get(name) if cls is PolicyConfig else None
        if sub is not None:
            if isinstance(value, sub):
                value = dataclasses.asdict(value)
            if not isinstance(value, Mapping):
                raise PolicyConfigError(f"{where}.{name} must be a mapping, got {type(value).__name__}")
            value = _build(sub, dict(value), f"{where}.{name}")
        elif value is not None and not isinstance(value, (str, bytes, int, float, bool)) and hasattr(value, "__iter__"):
            value = list(value)  # tuples, omegaconf ListConfig -> plain lists (JSON-able)
        kwargs[name] = value
    return cls(**kwargs)


_NESTED = {"unet": UnetConfig, "transformer": TransformerConfig, "obs_encoder": ObsEncoderConfig,
           "noise": NoiseConfig, "sampler": SamplerConfig}
