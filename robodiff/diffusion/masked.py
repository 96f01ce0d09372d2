"""The masked (absorbing-state) diffusion process: the discrete sibling of the Gaussian one (LLaDA, MDLM).

One idea, two instances. Both processes corrupt clean data to a level, train a denoiser against a target, and
run a reverse step from a prior back to clean data through the one loop, :func:`robodiff.diffusion.sample`:

    ==================  =========================================  ==========================================
    contract            Gaussian (``NoiseScheduler``)              masked (``MaskedDiffusion``)
    ==================  =========================================  ==========================================
    data x              float tensor (B, ...)                      int64 token ids (B, L)
    level               t in {0..T-1}, alphas_cumprod[t]           t ~ U(0, 1), p_mask = (1 - eps) t + eps
    noise at a level    ``add_noise(x0, eps, t)``                  ``add_noise(x0, t)``: each token -> mask
                                                                   with probability p_mask
    target + loss       MSE to eps / x0 / v (``diffusion_loss``)   CE on masked tokens / p_mask
                                                                   (``masked_diffusion_loss``)
    ``prior(shape)``    N(0, I)                                    every token the mask token
    ``set_timesteps``   decreasing training timesteps              decreasing step counters steps-1 .. 0
    ``step(out, t, x)`` DDPM / DDIM / DPM-Solver update            commit k predictions of the current block
    model output        same shape as x                            logits (B, L, V)
    ==================  =========================================  ==========================================

:class:`ReverseProcess` writes down the three methods the loop calls; both classes satisfy it (the Gaussian
``NoiseScheduler`` adds its ``add_noise``/``training_target``, this class its own forward process). Sample
text with ``sample(..., dtype=torch.long)``: the prompt is ``given``/``given_mask`` (kept exactly, like
inpainting).

The reverse process is LLaDA's sampler: the answer (the last ``gen_length`` positions) is split into
semi-autoregressive blocks of ``block_length``; ``steps`` are spread evenly over the blocks, and each block's
masked tokens evenly over its steps (the remainder to the first steps). Per step the model predicts every
masked token (temperature > 0: Gumbel-max sampling in float64) and the k most confident predictions of the
current block are committed ("low_confidence" remasking: the others are masked again) or k random ones
("random"). Positions past the current block are never committed early. As in MDLM's SUBS parameterisation,
the mask token itself is never predicted.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from robodiff.diffusion.names import REMASKING

MASK_EPS = 1e-3  # LLaDA: p_mask = (1 - eps) t + eps, so no sample is trained with nothing masked


class GenerationSettingsError(ValueError):
    """Settings of the masked sampler that cannot work together (named in the message, with the fix)."""


@runtime_checkable
class ReverseProcess(Protocol):
    """What :func:`robodiff.diffusion.sample` needs from a process: a prior, a timestep list, a reverse step."""

    def prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor: ...

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> torch.Tensor: ...

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor | int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor: ...


def _rand(shape, generator, device, dtype=torch.float32) -> torch.Tensor:
    """Uniform [0, 1) noise; a CPU generator works for a sample on any device (same draws everywhere)."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


class MaskedDiffusion:
    """Absorbing-state diffusion over token ids: the forward masking process and LLaDA's reverse sampler.

    Args:
        mask_token_id: id of the mask token (required: it is both the noise and the prior).
        eps: smallest masking probability, p_mask = (1 - eps) t + eps.
        gen_length: number of answer positions at the end of the sequence (None: the whole sequence).
        block_length: semi-autoregressive block size (None: one block, the whole answer).
        remasking: "low_confidence" (commit the most probable predictions) or "random".
        temperature: 0 = argmax; > 0 samples from softmax(logits / temperature) by Gumbel-max in float64.
        trace: optional callback ``trace(step_index, x_after, committed)`` (committed: bool (B, L), the
            positions unmasked by this step), e.g. to show which tokens were committed when.

    Bad combinations raise :class:`GenerationSettingsError` (a ValueError): gen_length not divisible by
    block_length here; steps not divisible by the number of blocks in :meth:`set_timesteps`.
    """

    def __init__(self, mask_token_id: int | None, *, eps: float = MASK_EPS, gen_length: int | None = None,
                 block_length: int | None = None, remasking: str = "low_confidence", temperature: float = 0.0,
                 trace: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None):
        if mask_token_id is None:
            raise GenerationSettingsError("masked diffusion needs a mask token: the tokenizer has no mask token "
                                          "(train it with robodiff.text.tokenizer, which adds <|mask|>)")
        if remasking not in REMASKING:
            raise GenerationSettingsError(f"remasking={remasking!r}; choose one of {list(REMASKING)}")
        if not 0 < eps < 1:
            raise GenerationSettingsError(f"eps={eps} must lie in (0, 1)")
        if temperature < 0:
            raise GenerationSettingsError(f"temperature={temperature} must be >= 0")
        if gen_length is not None and gen_length < 1:
            raise GenerationSettingsError(f"gen_length={gen_length} must be >= 1")
        if block_length is not None and block_length < 1:
            raise GenerationSettingsError(f"block_length={block_length} must be >= 1")
        if gen_length is not None and block_length is not None and gen_length % block_length:
            raise GenerationSettingsError(f"gen_length={gen_length} is not divisible by block_length={block_length}; "
                                          f"choose a block_length that divides it (e.g. {gen_length})")
        self.mask_token_id = int(mask_token_id)
        self.eps, self.remasking, self.temperature, self.trace = eps, remasking, temperature, trace
        self.gen_length, self.block_length = gen_length, block_length
        self.num_inference_steps: int | None = None

    # ------------------------------------------------------------------ forward process (training)
    def p_mask(self, t: torch.Tensor) -> torch.Tensor:
        """Probability that a token is masked at level t in [0, 1]."""
        return (1 - self.eps) * t + self.eps

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None,
                  keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, masked): every token of x0 (B, L) replaced by the mask with probability p_mask(t[b]).

        keep (bool, broadcastable to x0): positions never masked (an SFT prompt).
        """
        masked = _rand(x0.shape, generator, x0.device) < self.p_mask(t).view(-1, *[1] * (x0.dim() - 1))
        if keep is not None:
            masked &= ~keep.expand(x0.shape)
        return torch.where(masked, torch.full_like(x0, self.mask_token_id), x0), masked

    # ------------------------------------------------------------------ reverse process (sampling)
    def prior(self, shape, generator=None, device="cpu", dtype=torch.long):
        """Every position masked (``dtype`` must be an integer type: the loop passes its ``dtype``)."""
        if len(shape) != 2:
            raise GenerationSettingsError(f"masked diffusion samples token sequences (B, L); got shape {tuple(shape)}")
        if dtype.is_floating_point:
            raise GenerationSettingsError("sample token ids with sample(..., dtype=torch.long)")
        if (self.gen_length or 0) > shape[1]:
            raise GenerationSettingsError(f"gen_length={self.gen_length} is longer than the sequence ({shape[1]})")
        self.num_blocks(shape[1])  # block_length must divide the answer
        return torch.full(tuple(shape), self.mask_token_id, dtype=dtype, device=device)

    def set_timesteps(self, num_inference_steps: int, device=None) -> torch.Tensor:
        """Timesteps count the reverse steps left: steps-1, ..., 0 (the LLaDA transformer takes no time input)."""
        blocks = self.num_blocks()
        if num_inference_steps < 1 or (blocks and num_inference_steps % blocks):
            raise GenerationSettingsError(
                f"steps={num_inference_steps} must be a positive multiple of the number of blocks "
                f"({blocks} = gen_length {self.gen_length} / block_length {self.block_length}); "
                f"use e.g. steps={blocks * max(1, -(-num_inference_steps // max(blocks, 1)))}")
        self.num_inference_steps = num_inference_steps
        return torch.arange(num_inference_steps - 1, -1, -1, dtype=torch.long, device=device)

    def num_blocks(self, seq_len: int | None = None) -> int:
        """Blocks in the answer (0 when gen_length is only known from the sequence, i.e. at the first step)."""
        gen = self.gen_length or seq_len
        if gen is None:
            return 0 if self.block_length else 1
        block = self.block_length or gen
        if gen % block:
            raise GenerationSettingsError(f"gen_length={gen} is not divisible by block_length={block}")
        return gen // block

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None) -> torch.Tensor:
        """Commit this step's share of the current block's masked tokens; the rest stay masked.

        model_output: logits (B, L, V) for every position (only masked positions are read).
        """
        if self.num_inference_steps is None:
            raise GenerationSettingsError("call set_timesteps before step")
        B, L = sample.shape
        steps = self.num_inference_steps
        gen = self.gen_length or L
        blocks = self.num_blocks(L)
        if steps % blocks:
            raise GenerationSettingsError(f"steps={steps} is not divisible by the {blocks} blocks")
        per_block = steps // blocks
        i = steps - 1 - int(timestep)                       # index of this step, 0-based
        block, j = divmod(i, per_block)                     # current block, step inside it
        start = L - gen + block * (gen // blocks)
        end = start + gen // blocks

        masked = sample == self.mask_token_id               # (B, L)
        in_block = torch.zeros_like(masked)
        in_block[:, start:end] = True
        # each block's masks spread evenly over its steps, remainder first: ceil(left / steps left)
        left = (masked & in_block).sum(1)                   # (B,)
        k = torch.div(left + (per_block - j) - 1, per_block - j, rounding_mode="floor")

        logits = model_output.to(torch.float64).index_fill(  # never predict the mask (MDLM's SUBS)
            -1, torch.tensor([self.mask_token_id], device=model_output.device), -torch.inf)
        if self.temperature > 0:                            # Gumbel-max: argmax(l / T + G) ~ softmax(l / T)
            u = _rand(logits.shape, generator, logits.device, torch.float64).clamp_min(1e-300)
            pred = (logits - self.temperature * torch.log(-torch.log(u))).argmax(-1)
        else:
            pred = logits.argmax(-1)
        if self.remasking == "low_confidence":
            confidence = F.softmax(logits, -1).gather(-1, pred.unsqueeze(-1)).squeeze(-1)
        else:
            confidence = _rand((B, L), generator, sample.device, torch.float64)
        confidence = torch.where(masked & in_block, confidence, -torch.inf)

        order = confidence.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(L, device=sample.device).expand(B, L))
        commit = (rank < k.unsqueeze(1)) & masked & in_block
        x = torch.where(commit, pred.to(sample.dtype), sample)
        if self.trace is not None:
            self.trace(i, x, commit)
        return x

    def __repr__(self) -> str:
        return (f"MaskedDiffusion(mask={self.mask_token_id}, gen_length={self.gen_length}, "
                f"block_length={self.block_length}, remasking={self.remasking!r}, temperature={self.temperature})")


def masked_diffusion_loss(denoiser, x0: torch.Tensor, cond, process: MaskedDiffusion, *,
                          given_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                          random_length_prob: float = 0.0) -> torch.Tensor:
    """LLaDA's loss: cross-entropy on the masked tokens weighted by 1 / p_mask, per free token of each row.

    x0: clean token ids (B, L). For each row t ~ U(0, 1) and every free token is masked with p_mask(t); the
    denoiser ``denoiser(x_t, t, cond) -> logits (B, L, V)`` predicts the originals.

    Pre-training (given_mask None): sum over masked tokens of CE / p_mask, divided by B x L. With
    ``random_length_prob`` (LLaDA: 0.01) that share of batches is first cut to a random length in [1, L].
    SFT (given_mask (B, L), True on the prompt): the prompt is never masked and each row's sum is divided by
    its answer length (everything that is not prompt, EOS padding included), then averaged over rows.
    """
    B, L = x0.shape
    if given_mask is None and random_length_prob > 0 and float(_rand((), generator, "cpu")) < random_length_prob:
        cut = int(torch.randint(1, L + 1, (), generator=generator, device=generator.device if generator else "cpu"))
        x0, L = x0[:, :cut], cut
    t = _rand((B,), generator, x0.device)
    keep = given_mask.expand(x0.shape) if given_mask is not None else None
    x_t, masked = process.add_noise(x0, t, generator=generator, keep=keep)
    logits = denoiser(x_t, t, cond)
    if logits.shape[:2] != x0.shape:
        raise ValueError(f"denoiser logits shape {tuple(logits.shape)} does not start with the tokens' {(B, L)}")
    ce = F.cross_entropy(logits.transpose(1, 2).float(), x0, reduction="none")      # (B, L)
    weighted = (ce * masked / process.p_mask(t).unsqueeze(1)).sum(1)                # (B,)
    free = torch.full((B,), float(L), device=x0.device) if keep is None else (~keep).sum(1).clamp_min(1).float()
    return (weighted / free).mean()
