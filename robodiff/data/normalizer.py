"""Per-key affine normalization, stored as buffers so it travels inside a policy's state_dict.

Each key maps ``x`` to ``x * scale + offset`` per feature (every axis but the leading batch/time
axes).  Modes:

* ``limits``   per-feature min/max to [-1, 1] (the reference's default for actions and low-dim obs);
* ``gaussian`` per-feature zero mean, unit std;
* ``image``    [0, 1] -> [-1, 1];
* ``identity``.

Constant features (max - min or std below ``range_eps``) are centred but not scaled, so they do
not blow up to inf and still invert exactly.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn


class FieldNormalizer:
    """The affine map of one key: a view on the owning module's buffers."""

    def __init__(self, scale: torch.Tensor, offset: torch.Tensor):
        self.scale, self.offset = scale, offset

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        return x * self.scale.to(x.device, x.dtype) + self.offset.to(x.device, x.dtype)

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        return (x - self.offset.to(x.device, x.dtype)) / self.scale.to(x.device, x.dtype)


class LinearNormalizer(nn.Module):
    """Normalizes dicts of tensors key by key; fit on data, then saved with the model."""

    def __init__(self):
        super().__init__()
        self._keys: list[str] = []

    # buffers are named "<key>.scale" style is illegal; use a prefix + escaped key
    @staticmethod
    def _bname(key: str, what: str) -> str:
        return f"{what}__{key.replace('.', '__dot__')}"

    def _set(self, key: str, scale: torch.Tensor, offset: torch.Tensor) -> None:
        for what, value in (("scale", scale), ("offset", offset)):
            name = self._bname(key, what)
            value = value.detach().to(torch.float32).clone()
            if name in self._buffers:
                self._buffers[name] = value
            else:
                self.register_buffer(name, value)
        if key not in self._keys:
            self._keys.append(key)

    def fit(self, data: Mapping[str, np.ndarray | torch.Tensor], mode: str = "limits",
            output_min: float = -1.0, output_max: float = 1.0, range_eps: float = 1e-4) -> "LinearNormalizer":
        """Fit every key of ``data`` (arrays of shape (N, *feature_shape)) with ``mode``."""
        if mode not in ("limits", "gaussian"):
            raise ValueError(f"unknown normalizer mode {mode!r}; use 'limits' or 'gaussian' "
                             "(set_image / set_identity for the fixed maps)")
        for key, value in data.items():
            x = torch.as_tensor(np.asarray(value), dtype=torch.float64)
            scalar_feature = x.ndim == 1
            if x.ndim == 0 or x.shape[0] == 0:
                raise ValueError(f"normalizer: key {key!r} has no samples to fit (shape {tuple(x.shape)})")
            if scalar_feature:
                x = x.reshape(-1, 1)
            if not torch.isfinite(x).all():
                raise ValueError(f"normalizer: key {key!r} contains NaN or inf; clean the data first")
            if mode == "limits":
                lo, hi = x.min(0).values, x.max(0).values
                span = hi - lo
                const = span < range_eps
                scale = torch.where(const, torch.ones_like(span), (output_max - output_min) / span.clamp_min(range_eps))
                offset = torch.where(const, (output_max + output_min) / 2 - lo,
                                     output_min - lo * scale)
            else:
                mean, std = x.mean(0), x.std(0, unbiased=False)
                const = std < range_eps
                scale = torch.where(const, torch.ones_like(std), 1.0 / std.clamp_min(range_eps))
                offset = -mean * scale
            if scalar_feature:
                scale, offset = scale.reshape(()), offset.reshape(())
            self._set(key, scale, offset)
        return self

    def set_image(self, key: str) -> None:
        """Images in [0, 1] -> [-1, 1]."""
        self._set(key, torch.tensor(2.0), torch.tensor(-1.0))

    def set_identity(self, key: str) -> None:
        self._set(key, torch.tensor(1.0), torch.tensor(0.0))

    def keys(self) -> list[str]:
        return list(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __getitem__(self, key: str) -> FieldNormalizer:
        if key not in self._keys:
            raise KeyError(f"normalizer has no key {key!r}; it was fit on {self._keys}")
        return FieldNormalizer(self._buffers[self._bname(key, "scale")], self._buffers[self._bname(key, "offset")])

    def normalize(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self[k].normalize(v) for k, v in data.items()}

    def unnormalize(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self[k].unnormalize(v) for k, v in data.items()}

    def forward(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.normalize(data)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # Keys are data, not architecture: create the buffers a saved normalizer had, so a
        # fresh policy loads a fitted normalizer without knowing its keys in advance.
        for full, value in state_dict.items():
            if not full.startswith(prefix):
                continue
            name = full[len(prefix):]
            for what in ("scale", "offset"):
                if name.startswith(what + "__") and "." not in name:
                    key = name[len(what) + 2:].replace("__dot__", ".")
                    if name not in self._buffers:
                        self.register_buffer(name, torch.empty_like(value))
                    if key not in self._keys:
                        self._keys.append(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"keys={self._keys}"
