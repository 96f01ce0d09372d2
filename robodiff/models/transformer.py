"""TransformerForDiffusion: a transformer decoder over the action chunk, cross-attending to condition tokens.

The chunk's time steps are the decoder's query tokens; the memory is one token for the diffusion step plus
one token per observation step. With ``causal_attn`` the action at step i attends only to actions <= i and to
the step token and observations <= i (observation i is the one taken before action i), as in the reference.
Built from torch's ``nn.TransformerDecoder`` (pre-norm) and diffusers' sinusoidal ``Timesteps``.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import Timesteps
from torch import nn


class TransformerForDiffusion(nn.Module):
    """Denoiser ``(x (B,T,D), t (B,), cond (B,To,Dc) | None) -> (B,T,D)``.

    Args:
        input_dim: features per chunk step. horizon: T (max chunk length, for the position embedding).
        cond_dim: observation features per step (0: the memory is the step token alone).
        n_obs_steps: max number of observation tokens (To).
        n_layer, n_head, n_emb: decoder depth, heads and width. p_drop_emb / p_drop_attn: dropout.
        causal_attn: mask the future (actions after i, observations after i) for the action at step i.
    """

    def __init__(self, input_dim: int, horizon: int, cond_dim: int = 0, n_obs_steps: int = 1, n_layer: int = 8,
                 n_head: int = 4, n_emb: int = 256, p_drop_emb: float = 0.0, p_drop_attn: float = 0.01,
                 causal_attn: bool = True):
        super().__init__()
        if n_emb % n_head:
            raise ValueError(f"n_emb={n_emb} must be divisible by n_head={n_head}")
        self.input_dim, self.horizon, self.cond_dim, self.n_obs_steps = input_dim, horizon, cond_dim, n_obs_steps
        self.causal_attn = causal_attn
        self.input_emb = nn.Linear(input_dim, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, n_emb))
        self.step_emb = Timesteps(n_emb, flip_sin_to_cos=False, downscale_freq_shift=1)
        self.cond_emb = nn.Linear(cond_dim, n_emb) if cond_dim else None
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, 1 + (n_obs_steps if cond_dim else 0), n_emb))
        self.drop = nn.Dropout(p_drop_emb)
        self.cond_encoder = nn.Sequential(nn.Linear(n_emb, 4 * n_emb), nn.Mish(), nn.Linear(4 * n_emb, n_emb))
        layer = nn.TransformerDecoderLayer(n_emb, n_head, 4 * n_emb, dropout=p_drop_attn, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, n_layer)
        self.ln_f = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, input_dim)
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _masks(self, T: int, S: int, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Boolean masks, True = may not attend. Memory token 0 is the step, token s >= 1 is observation s-1."""
        if not self.causal_attn:
            return None, None
        i = torch.arange(T, device=device)
        tgt = i[None, :] > i[:, None]  # (T, T) future actions
        mem = torch.arange(S, device=device)[None, :] > i[:, None] + 1  # (T, S) observations after step i
        return tgt, mem

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        if D != self.input_dim or T > self.horizon:
            raise ValueError(f"TransformerForDiffusion expects x (B, <= {self.horizon}, {self.input_dim}), "
                             f"got {tuple(x.shape)}")
        memory = self.step_emb(t.expand(B)).unsqueeze(1)  # (B, 1, n_emb)
        if self.cond_emb is not None:
            if cond is None or cond.ndim != 3 or cond.shape[2] != self.cond_dim or cond.shape[1] > self.n_obs_steps:
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"TransformerForDiffusion expects cond (B, <= {self.n_obs_steps}, {self.cond_dim}), "
                                 f"got {got}")
            memory = torch.cat([memory, self.cond_emb(cond)], dim=1)  # (B, 1 + To, n_emb)
        S = memory.shape[1]
        memory = self.cond_encoder(self.drop(memory + self.cond_pos_emb[:, :S]))
        h = self.drop(self.input_emb(x) + self.pos_emb[:, :T])
        tgt_mask, mem_mask = self._masks(T, S, x.device)
        h = self.decoder(h, memory, tgt_mask=tgt_mask, memory_mask=mem_mask)
        return self.head(self.ln_f(h))
