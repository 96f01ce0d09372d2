"""ConditionalUnet1D: a temporal U-Net over action chunks, conditioned by FiLM.

Shapes: ``x`` (B, T, D) -> (B, T, D). Convolutions run over time (channels = features). Every residual block
gets a per-channel scale and bias from ``[diffusion-step embedding, global condition]`` (FiLM), which is how
observations steer the whole chunk. The building blocks (Conv1d-GroupNorm-Mish, strided down/up sampling,
sinusoidal step embedding + MLP) are diffusers'; the FiLM residual block and the U-Net wiring are ours
because diffusers' 1D U-Net only adds a time bias and has no global condition.
"""

from __future__ import annotations

import torch
from diffusers.models.downsampling import Downsample1D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Conv1dBlock
from diffusers.models.upsampling import Upsample1D
from torch import nn


class FiLMResidualBlock1D(nn.Module):
    """Two Conv1d-GroupNorm-Mish blocks; between them the features are scaled and shifted by the condition."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.conv_in = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.conv_out = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:  # x (B, C_in, T), cond (B, cond_dim)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)  # (B, C_out, 1) each
        h = scale * self.conv_in(x) + bias
        return self.conv_out(h) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Denoiser ``(x (B,T,D), t (B,), cond) -> (B,T,D)`` with a global condition.

    Args:
        input_dim: features per time step (the action dim, or action + obs features when inpainting).
        global_cond_dim: size of the flattened condition (0 for none). ``cond`` may be (B, global_cond_dim) or
            any (B, ...) that flattens to it, e.g. per-step observation features (B, n_obs_steps, F).
        down_dims: channels per level; T must be divisible by 2 ** (len(down_dims) - 1).
        kernel_size, n_groups: Conv1d kernel and GroupNorm groups (every entry of down_dims must divide).
        step_embed_dim: size of the diffusion-step embedding.
    """

    def __init__(self, input_dim: int, global_cond_dim: int = 0, down_dims=(256, 512, 1024), kernel_size: int = 5,
                 n_groups: int = 8, step_embed_dim: int = 256):
        super().__init__()
        down_dims = list(down_dims)
        bad = [d for d in down_dims if d % n_groups]
        if bad:
            raise ValueError(f"down_dims {down_dims}: {bad} not divisible by n_groups={n_groups} (GroupNorm)")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the horizon length, got {kernel_size}")
        self.input_dim, self.global_cond_dim, self.n_levels = input_dim, global_cond_dim, len(down_dims)
        self.step_embed = nn.Sequential(
            Timesteps(step_embed_dim, flip_sin_to_cos=False, downscale_freq_shift=1),
            TimestepEmbedding(step_embed_dim, 4 * step_embed_dim, act_fn="mish", out_dim=step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim

        def block(c_in, c_out):
            return FiLMResidualBlock1D(c_in, c_out, cond_dim, kernel_size, n_groups)

        dims = [input_dim] + down_dims
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([
                block(c_in, c_out), block(c_out, c_out),
                nn.Identity() if last else Downsample1D(c_out, use_conv=True, padding=1),
            ]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        for c_out, c_in in reversed(list(zip(down_dims[:-1], down_dims[1:]))):
            self.up.append(nn.ModuleList([
                block(2 * c_in, c_out), block(c_out, c_out), Upsample1D(c_out, use_conv_transpose=True),
            ]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   nn.Conv1d(down_dims[0], input_dim, 1))

    def check_horizon(self, horizon: int) -> None:
        factor = 2 ** (self.n_levels - 1)
        if horizon % factor:
            raise ValueError(
                f"horizon {horizon} does not fit a U-Net with {self.n_levels} levels: it must be divisible by "
                f"2**{self.n_levels - 1}={factor}; use horizon {horizon + factor - horizon % factor} or fewer "
                f"down_dims")

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        if D != self.input_dim:
            raise ValueError(f"ConditionalUnet1D expects x (B, T, {self.input_dim}), got {tuple(x.shape)}")
        self.check_horizon(T)
        emb = self.step_embed(t.expand(B))  # (B, step_embed_dim)
        if self.global_cond_dim:
            if cond is None or cond[0].numel() != self.global_cond_dim:
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"ConditionalUnet1D expects cond (B, {self.global_cond_dim}) or (B, ..) of that "
                                 f"size, got {got}")
            emb = torch.cat([emb, cond.reshape(B, -1)], dim=-1)
        h = x.transpose(1, 2)  # (B, D, T)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, emb), emb)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, emb)
        for res1, res2, up in self.up:
            h = res2(res1(torch.cat([h, skips.pop()], dim=1), emb), emb)
            h = up(h)
        return self.final(h).transpose(1, 2)
