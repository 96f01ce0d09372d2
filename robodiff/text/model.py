"""The text model: one transformer, bidirectional for masked diffusion (LLaDA) or causal for the AR twin.

``TextLM`` is what the one training loop trains (it has ``compute_loss(batch)``) and what generation samples
(``denoiser(x, t, cond)`` is the ``(x, t, cond)`` signature of :func:`robodiff.diffusion.sample`):

* objective "mdm": no causal mask; the loss is :func:`robodiff.diffusion.masked_diffusion_loss` (LLaDA's
  pre-training loss, or SFT with the prompt never masked); like LLaDA, the transformer takes no time input.
* objective "ar": the same transformer with a causal mask and the next-token loss. Its denoiser shifts the
  logits one place right (the logits at position i are the prediction *for* position i), so sampling it
  with the masked process in blocks of one token is exactly greedy (or temperature) left-to-right decoding,
  through the same loop.

Everything inference needs (sizes, objective, the tokenizer's JSON) lives in ``cfg["text"]``, so
``build_model(cfg, None)`` rebuilds the model from a checkpoint alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robodiff.diffusion.masked import MASK_EPS, MaskedDiffusion, masked_diffusion_loss
from robodiff.text.tokenizer import TextTokenizer

OBJECTIVES = ("mdm", "ar")
MODES = ("pretrain", "sft")
MODEL_DEFAULTS = dict(objective="mdm", mode="pretrain", d_model=128, n_layers=4, n_heads=4, max_len=64,
                      dropout=0.0, mask_eps=MASK_EPS, random_length_prob=0.01)


class TextTransformer(nn.Module):
    """Token + learned position embeddings, pre-norm ``nn.TransformerEncoder`` blocks, tied output head."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 128, n_layers: int = 4, n_heads: int = 4,
                 causal: bool = False, dropout: float = 0.0):
        super().__init__()
        self.causal, self.max_len = causal, max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) int64 -> logits (B, L, V)."""
        L = tokens.shape[1]
        if L > self.max_len:
            raise ValueError(f"sequence of {L} tokens is longer than the model's max_len={self.max_len}")
        h = self.tok(tokens) + self.pos(torch.arange(L, device=tokens.device))  # (B, L, D)
        mask = nn.Transformer.generate_square_subsequent_mask(L, device=tokens.device) if self.causal else None
        h = self.blocks(h, mask=mask, is_causal=self.causal)
        return self.head(self.norm(h))


class TextLM(nn.Module):
    """A masked-diffusion LM or its autoregressive twin (``objective``), trainable by ``robodiff.training``."""

    def __init__(self, tokenizer: TextTokenizer, objective: str = "mdm", mode: str = "pretrain", d_model: int = 128,
                 n_layers: int = 4, n_heads: int = 4, max_len: int = 64, dropout: float = 0.0,
                 mask_eps: float = MASK_EPS, random_length_prob: float = 0.01):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"text.objective={objective!r}; choose one of {list(OBJECTIVES)}")
        if mode not in MODES:
            raise ValueError(f"text.mode={mode!r}; choose one of {list(MODES)}")
        self.tokenizer, self.objective, self.mode = tokenizer, objective, mode
        self.random_length_prob = random_length_prob
        self.net = TextTransformer(tokenizer.vocab_size, max_len, d_model, n_layers, n_heads,
                                   causal=objective == "ar", dropout=dropout)
        self.process = MaskedDiffusion(tokenizer.mask_id, eps=mask_eps)

    @property
    def causal(self) -> bool:
        return self.objective == "ar"

    def denoiser(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        """Logits for every position of x (B, L). ``cond["hide"]`` (bool (B, L)): positions shown as masks
        (classifier-free guidance's unconditional pass hides the prompt this way)."""
        if cond is not None and "hide" in cond:
            x = torch.where(cond["hide"], torch.full_like(x, self.process.mask_token_id), x)
        logits = self.net(x)
        if self.causal:  # the prediction for position i comes from position i - 1
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    def compute_loss(self, batch: dict) -> torch.Tensor:
        tokens, prompt = batch["tokens"], batch["prompt_mask"]
        sft = self.mode == "sft"
        if self.objective == "mdm":
            return masked_diffusion_loss(self.denoiser, tokens, None, self.process,
                                         given_mask=prompt if sft else None,
                                         random_length_prob=0.0 if sft else self.random_length_prob)
        logits = self.net(tokens)[:, :-1]                   # next-token prediction
        target = tokens[:, 1:]
        ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, L-1)
        if not sft:
            return ce.mean()
        answer = ~prompt[:, 1:]
        return ((ce * answer).sum(1) / answer.sum(1).clamp_min(1)).mean()  # per answer token, like the MDM


def text_model_config(tokenizer: TextTokenizer, **overrides) -> dict:
    """The ``cfg["text"]`` section: model defaults, overrides, and the tokenizer's JSON."""
    unknown = set(overrides) - set(MODEL_DEFAULTS) - {"seq_len"}
    if unknown:
        raise ValueError(f"unknown text model settings {sorted(unknown)}; known: {sorted(MODEL_DEFAULTS)}")
    return dict(MODEL_DEFAULTS, **overrides, tokenizer=tokenizer.to_json())


def build_model(cfg: dict, dataset=None) -> TextLM:
    """The training loop's model builder (also called as ``build_model(cfg, None)`` to load a checkpoint)."""
    t = dict(cfg["text"])
    tokenizer = TextTokenizer.from_json(t.pop("tokenizer"))
    t.pop("seq_len", None)
    return TextLM(tokenizer, **t)
