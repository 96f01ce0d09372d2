"""Observation encoder: one vision trunk per camera, concatenated with the low-dim observations.

The default trunk is robomimic's (ResNet18 conv trunk -> SpatialSoftmax keypoints -> Linear), the reference's
image encoder, with BatchNorm replaced by GroupNorm (batch statistics interact badly with EMA weights and
small batches). Images are randomly cropped in training and center-cropped in evaluation by robomimic's
CropRandomizer. ``backbone="resnet18"`` uses a plain torchvision ResNet18 (global average pool + Linear) instead;
``backbone="shallow"`` robomimic's ShallowConv (4 conv layers, 35k parameters; ~3x cheaper than the ResNet18
trunk, for CPU training). ``resize_shape`` first resizes the camera image inside the encoder (antialiased), so
a policy can train and run at a lower resolution than the camera delivers, identically in both.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import nn

BACKBONES = ("robomimic", "resnet18", "shallow")


def _robomimic_obs_core():
    """robomimic's obs_core module, imported on first use (it pulls in torchvision: seconds)."""
    with contextlib.redirect_stdout(io.StringIO()):
        # robomimic prints a "No private macro file found!" banner on import; it only concerns its own
        # training scripts (wandb settings, debug flags), none of which we use.
        from robomimic.models import obs_core
    return obs_core


def replace_batchnorm_with_groupnorm(module: nn.Module, channels_per_group: int = 16) -> nn.Module:
    """Swap every BatchNorm2d for a GroupNorm with ``channels_per_group`` channels per group, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            setattr(module, name, nn.GroupNorm(max(1, c // channels_per_group), c))
        else:
            replace_batchnorm_with_groupnorm(child, channels_per_group)
    return module


class ImageEncoder(nn.Module):
    """(N, C, H, W) images in [-1, 1] -> (N, feature_dim) features for one camera."""

    def __init__(self, shape, backbone: str = "robomimic", crop_shape=(84, 84), num_keypoints: int = 32,
                 feature_dim: int = 64, resize_shape=None):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown vision backbone {backbone!r}; choose one of {list(BACKBONES)}")
        obs_core = _robomimic_obs_core()
        C, H, W = shape
        self.resize = tuple(int(s) for s in resize_shape) if resize_shape is not None else None
        if self.resize is not None:
            H, W = self.resize
            shape = (C, H, W)
        self.crop = None
        if crop_shape is not None:
            ch, cw = crop_shape
            if not (0 < ch < H and 0 < cw < W):
                raise ValueError(f"crop_shape {list(crop_shape)} must be smaller than the image {H}x{W}")
            self.crop = obs_core.CropRandomizer(input_shape=list(shape), crop_height=ch, crop_width=cw, num_crops=1)
            H, W = ch, cw
        with warnings.catch_warnings():
            # robomimic builds torchvision's resnet18 with the deprecated `pretrained=False`
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            if backbone in ("robomimic", "shallow"):
                trunk = {"backbone_class": "ResNet18Conv", "backbone_kwargs": {"pretrained": False}} \
                    if backbone == "robomimic" else {"backbone_class": "ShallowConv", "backbone_kwargs": {}}
                net = obs_core.VisualCore(input_shape=[C, H, W], **trunk, pool_class="SpatialSoftmax",
                                          pool_kwargs={"num_kp": num_keypoints}, feature_dimension=feature_dim)
            else:
                import torchvision

                net = torchvision.models.resnet18(weights=None, num_classes=feature_dim)
                if C != 3:
                    net.conv1 = nn.Conv2d(C, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net = replace_batchnorm_with_groupnorm(net)
        self.feature_dim = feature_dim

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.resize is not None and tuple(img.shape[-2:]) != self.resize:
            img = nn.functional.interpolate(img, size=self.resize, mode="bilinear", antialias=True, align_corners=False)
        if self.crop is not None:
            img = self.crop.forward_in(img)  # random crop in train mode, center crop in eval mode
        feat = self.net(img)
        return self.crop.forward_out(feat) if self.crop is not None else feat


class ObsEncoder(nn.Module):
    """A dict of per-step observations {key: (N, *shape)} -> (N, feature_dim), keys in the given order.

    ``obs_shapes`` maps key -> (shape, type) with type "rgb" (an ImageEncoder per key) or "lowdim" (flattened
    and passed through). Inputs are expected normalized (images in [-1, 1]).
    """

    def __init__(self, obs_shapes: dict[str, tuple[tuple[int, ...], str]], backbone: str = "robomimic",
                 crop_shape=(84, 84), num_keypoints: int = 32, feature_dim: int = 64, resize_shape=None):
        super().__init__()
        self.obs_shapes = {k: (tuple(s), typ) for k, (s, typ) in obs_shapes.items()}
        self.image_encoders = nn.ModuleDict()
        self.feature_dim = 0
        for key, (shape, typ) in self.obs_shapes.items():
            if typ == "rgb":
                if len(shape) != 3:
                    raise ValueError(f"rgb observation {key!r} must have shape (C, H, W), got {list(shape)}")
                self.image_encoders[key] = ImageEncoder(shape, backbone, crop_shape, num_keypoints, feature_dim,
                                                        resize_shape)
                self.feature_dim += feature_dim
            elif typ == "lowdim":
                self.feature_dim += int(torch.Size(shape).numel())
            else:
                raise ValueError(f"observation {key!r} has type {typ!r}; use 'rgb' or 'lowdim'")

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = []
        for key in self.obs_shapes:
            x = obs[key]
            feats.append(self.image_encoders[key](x) if key in self.image_encoders else x.reshape(x.shape[0], -1))
        return torch.cat(feats, dim=-1)
