"""Text generation through the one sampling loop: prompt + all-masked answer -> ``robodiff.diffusion.sample``.

The prompt is the loop's ``given``/``given_mask`` (kept exactly, like inpainting); the answer is the last
``gen_length`` positions, unmasked by :class:`~robodiff.diffusion.MaskedDiffusion` in semi-autoregressive
blocks. Classifier-free guidance is expressed as data: the conditional pass sees the prompt, the
unconditional pass gets ``cond={"hide": prompt positions}`` and sees masks there. LLaDA writes guided logits
as ``u + (w + 1)(c - u)``; the loop computes ``u + s (c - u)``, so LLaDA's scale w is the loop's
``guidance_scale = w + 1`` and w = 0 is plain conditional sampling (the loop then makes no second pass).

The autoregressive twin decodes through the same loop: blocks of one token and one step per token commit
exactly the next token each step (its denoiser shifts logits so position i holds the prediction for i).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import torch

from robodiff.diffusion import sample
from robodiff.diffusion.masked import GenerationSettingsError, MaskedDiffusion
from robodiff.text.model import TextLM


def generate_ids(model: TextLM, prompt_ids: torch.Tensor, gen_length: int, *, block_length: int | None = None,
                 steps: int | None = None, remasking: str = "low_confidence", temperature: float = 0.0,
                 guidance: float = 0.0, generator: torch.Generator | None = None,
                 trace: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """(B, P + gen_length) token ids: the prompts (B, P) followed by their generated answers.

    block_length defaults to gen_length (one block), steps to gen_length (one token per step, LLaDA's best
    quality). guidance is LLaDA's CFG scale w (0 = off). For an autoregressive model, blocks of one token and
    ``gen_length`` steps are implied and guidance is refused.
    """
    if model.causal:
        if guidance:
            raise GenerationSettingsError("classifier-free guidance needs a masked diffusion model (objective mdm); "
                                          "this checkpoint is autoregressive")
        block_length, steps = 1, gen_length
    block_length = block_length or gen_length
    steps = steps or gen_length
    process = MaskedDiffusion(model.process.mask_token_id, gen_length=gen_length, block_length=block_length,
                              remasking=remasking, temperature=temperature, trace=trace)
    device = next(model.parameters()).device
    B, P = prompt_ids.shape
    shape = (B, P + gen_length)
    given = torch.full(shape, process.mask_token_id, dtype=torch.long)
    given[:, :P] = prompt_ids
    given_mask = (torch.arange(shape[1]) < P).expand(shape)
    cond = uncond = None
    if guidance:
        cond = {"hide": torch.zeros(shape, dtype=torch.bool, device=device)}
        uncond = {"hide": given_mask.to(device)}
    return sample(model.denoiser, shape, cond, process, steps, generator, given=given, given_mask=given_mask,
                  guidance_scale=guidance + 1.0, uncond=uncond, device=device, dtype=torch.long)


def complete(model: TextLM, prompts: list[str], gen_length: int | None = None, total_length: int | None = None,
             **kwargs) -> list[str]:
    """Answers (text up to the first EOS) to ``prompts``, batched by prompt length.

    Either a fixed ``gen_length`` or a ``total_length`` that every prompt + answer fills (e.g. the training
    sequence length, so a short prompt gets a longer answer region, as the model saw in training).
    """
    if (gen_length is None) == (total_length is None):
        raise ValueError("give exactly one of gen_length and total_length")
    tok = model.tokenizer
    by_len: dict[int, list[int]] = defaultdict(list)
    encoded = [tok.encode(p) for p in prompts]
    for i, ids in enumerate(encoded):
        by_len[len(ids)].append(i)
    answers: list[str] = [""] * len(prompts)
    for P, idx in sorted(by_len.items()):
        n = gen_length if gen_length is not None else total_length - P
        if n < 1:
            raise ValueError(f"a prompt of {P} tokens leaves no room in total_length={total_length}")
        out = generate_ids(model, torch.tensor([encoded[i] for i in idx]), n, **kwargs)
        for row, i in zip(out[:, P:].tolist(), idx):
            answers[i] = tok.decode(row)
    return answers
