"""Image datasets that ship offline: scikit-learn's digits and Push-T frames from a replay buffer.

Every item is a dict of tensors::

    {"image": (C, S, S) float in [-1, 1] (8-bit levels), "label": () int64 (-1: none),
     "tokens": (MAX_TOKENS,) int64 caption ids}

Images are held as uint8 (the 8-bit levels the bits/dim bound is defined on) and converted per batch in
``__getitems__``. ``make_image_dataset(cfg["data"])`` returns the training split; its
``get_validation_dataset()`` is the held-out split the quality metrics and bits/dim use.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from robodiff.data.datasets import DatasetError
from robodiff.image.captions import CaptionTokenizer, digit_caption, pusht_captions

DIGITS = "digits"
DEFAULT_DATA = {"name": DIGITS, "size": 16, "val_fraction": 0.2, "seed": 0, "frame_stride": 10,
                "max_frames": None, "channels": None}  # channels: null = 1 for digits, 3 for Push-T frames


class ImageDataset(Dataset):
    """uint8 images (N, C, S, S) with labels (N,) and caption token ids (N, L); an optional held-out split."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, captions: list[str], val: "ImageDataset | None" = None):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.captions = list(captions)
        self.tokens = CaptionTokenizer()(self.captions)
        self.latents: torch.Tensor | None = None  # (N, c, s, s) when a latent model's VAE pre-encoded them
        self._val = val

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        item = {"image": self.images[idx].float() / 127.5 - 1, "label": self.labels[idx], "tokens": self.tokens[idx]}
        if self.latents is not None:
            item["latent"] = self.latents[idx]
        return item

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def get_validation_dataset(self) -> "ImageDataset | None":
        return self._val


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def load_digits(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (values 0..16), upsampled bilinearly to size x size, as uint8 (N,1,S,S)."""
    from sklearn.datasets import load_digits as sklearn_digits

    d = sklearn_digits()
    x = torch.from_numpy(d.images).float().unsqueeze(1) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), d.target.astype(np.int64)


def load_pusht_frames(path: str | Path, size: int, stride: int, max_frames: int | None):
    """Every ``stride``-th frame of a Push-T replay buffer's ``img`` (N, 96, 96, 3), resized to size x size
    (cv2 INTER_AREA), as uint8 (N, 3, S, S), with captions from its ``state`` (and ``keypoint``)."""
    from robodiff.data import ReplayBuffer

    rb = ReplayBuffer.open(path, mode="r")
    for key in ("img", "state"):
        if key not in rb:
            raise DatasetError(f"{path}: no data/{key} array (keys: {rb.keys()}); Push-T frames need 'img' and "
                               "'state' (agent x, y, block x, y, angle)")
    rows = np.arange(0, rb.n_steps, stride)[:max_frames]
    arr = rb["img"]
    # orthogonal selection reads only the chunks holding the chosen rows (the whole array is 2.8 GB float32)
    img = arr.get_orthogonal_selection((rows,)) if hasattr(arr, "get_orthogonal_selection") else arr[rows]
    if img.ndim != 4 or img.shape[-1] != 3:
        raise DatasetError(f"{path}: data/img has shape {img.shape}; expected (N, H, W, 3) RGB frames")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).round().astype(np.uint8)
    if img.shape[1] != size:
        img = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in img])
    state = np.asarray(rb["state"])[rows]
    keypoint = np.asarray(rb["keypoint"])[rows] if "keypoint" in rb else None
    return img.transpose(0, 3, 1, 2).copy(), pusht_captions(state, keypoint)


def make_image_dataset(data_cfg: dict) -> ImageDataset:
    """The training split of ``data_cfg["name"]`` ("digits" or a Push-T replay buffer path) with its
    held-out split attached (``val_fraction`` of the images, drawn with ``seed``)."""
    cfg = {**DEFAULT_DATA, **data_cfg}
    size = int(cfg["size"])
    if cfg["name"] == DIGITS:
        images, labels = load_digits(size)
        captions = [digit_caption(y) for y in labels]
    else:
        path = Path(cfg["name"])
        if not path.exists():
            raise DatasetError(f"image data {str(path)!r} not found: use 'digits' or the path of a Push-T replay "
                               "buffer (e.g. ../shared/data/pusht/pusht_cchi_v7_replay.zarr)")
        images, captions = load_pusht_frames(path, size, int(cfg["frame_stride"]), cfg["max_frames"])
        labels = np.full(len(images), -1)
    train, val = _split(len(images), float(cfg["val_fraction"]), int(cfg["seed"]))
    pick = lambda idx: (images[idx], labels[idx], [captions[i] for i in idx])  # noqa: E731
    return ImageDataset(*pick(train), val=ImageDataset(*pick(val)) if len(val) else None)
