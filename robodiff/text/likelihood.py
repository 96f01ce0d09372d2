"""Conditional log-likelihood of an answer under a masked diffusion LM (LLaDA's lower-variance estimator).

The masked model bounds log p(answer | prompt) from below by

    B = E_{l ~ U{1..L}} E_{S: l of the L answer positions, uniformly} [ L / l * sum_{i in S} log p(a_i | x_S) ]

where x_S is prompt + answer with S masked. :func:`conditional_log_likelihood` estimates B by Monte Carlo
(LLaDA uses 128 samples); :func:`exact_conditional_bound` enumerates every subset (2^L - 1 of them, for tests
and toy answers). For a model whose predictions ignore the other answer tokens B equals log p exactly.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def _masked_log_probs(denoiser, mask_id: int, prompt: torch.Tensor, answer: torch.Tensor,
                      masks: torch.Tensor) -> torch.Tensor:
    """sum_{i masked} log p(a_i | prompt, answer with ``masks`` (N, L) masked) -> (N,)."""
    N = masks.shape[0]
    seq = torch.cat([prompt, answer]).expand(N, -1).clone()
    full = torch.cat([torch.zeros(N, len(prompt), dtype=torch.bool, device=masks.device), masks], dim=1)
    seq[full] = mask_id
    logits = denoiser(seq, torch.zeros(N, device=seq.device), None)[:, len(prompt):].double()
    logits = logits.index_fill(-1, torch.tensor([mask_id], device=logits.device), -torch.inf)  # never the mask
    logp = F.log_softmax(logits, -1).gather(-1, answer.expand(N, -1).unsqueeze(-1)).squeeze(-1)
    return (logp * masks).sum(1)


@torch.no_grad()
def conditional_log_likelihood(denoiser, mask_id: int, prompt: torch.Tensor, answer: torch.Tensor,
                               num_samples: int = 128, batch_size: int = 32,
                               generator: torch.Generator | None = None) -> float:
    """Monte-Carlo estimate of the bound B: l ~ U{1..L} answer tokens masked without replacement, weight L / l."""
    L = len(answer)
    total = 0.0
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        l = torch.randint(1, L + 1, (n,), generator=generator)
        order = torch.rand(n, L, generator=generator).argsort(1)       # a random permutation per sample
        masks = order < l.unsqueeze(1)                                   # its first l positions: l masked
        masks = masks.to(answer.device)
        terms = _masked_log_probs(denoiser, mask_id, prompt, answer, masks) * (L / l.to(answer.device))
        total += float(terms.sum())
    return total / num_samples


@torch.no_grad()
def exact_conditional_bound(denoiser, mask_id: int, prompt: torch.Tensor, answer: torch.Tensor) -> float:
    """The bound B by enumerating every non-empty subset of answer positions (answers of up to ~12 tokens)."""
    L = len(answer)
    if L > 12:
        raise ValueError(f"exact enumeration of a {L}-token answer needs {2**L - 1} model calls; use the estimator")
    value = 0.0
    for l in range(1, L + 1):
        subsets = torch.tensor([[i in s for i in range(L)] for s in itertools.combinations(range(L), l)],
                               device=answer.device)
        terms = _masked_log_probs(denoiser, mask_id, prompt, answer, subsets)
        value += (1 / L) * (L / l) * float(terms.sum()) / math.comb(L, l)
    return value
