"""Token datasets for the training loop: fixed-length EOS-padded sequences plus a prompt mask."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from robodiff.text.corpus import Corpus
from robodiff.text.tokenizer import TextTokenizer


class TokenDataset(Dataset):
    """Items ``{"tokens": (L,) int64, "prompt_mask": (L,) bool}``; ``__getitems__`` gathers a batch at once.

    Every sequence is ``<|bos|> text <|eos|> <|eos|> ...`` padded to the longest one plus one EOS (the
    padding is part of the answer, as in LLaDA's SFT, so a model learns where text ends). For SFT pairs
    the prompt mask covers BOS and the prompt; for pre-training it is all False.
    """

    def __init__(self, tokens: torch.Tensor, prompt_mask: torch.Tensor):
        self.tokens, self.prompt_mask = tokens, prompt_mask

    @classmethod
    def from_corpus(cls, corpus: Corpus, tokenizer: TextTokenizer, max_len: int = 64) -> "TokenDataset":
        if corpus.pairs is not None:
            seqs = [(tokenizer.encode(p), tokenizer.encode(a, bos=False)) for p, a in corpus.pairs]
        else:
            seqs = [([], tokenizer.encode(line)) for line in corpus.lines]
        seq_len = max(len(p) + len(a) for p, a in seqs) + 1
        if seq_len > max_len:
            raise ValueError(f"the longest corpus sequence needs {seq_len} tokens (with EOS) but the model's "
                             f"max_len is {max_len}; raise --max-len or shorten the lines")
        tokens = torch.full((len(seqs), seq_len), tokenizer.eos_id, dtype=torch.long)
        prompt_mask = torch.zeros((len(seqs), seq_len), dtype=torch.bool)
        for i, (p, a) in enumerate(seqs):
            tokens[i, : len(p) + len(a)] = torch.tensor(p + a)
            prompt_mask[i, : len(p)] = True
        return cls(tokens, prompt_mask)

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[1]

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.tokens[i], "prompt_mask": self.prompt_mask[i]}

    def __getitems__(self, indices: list[int]) -> dict:
        idx = torch.as_tensor(indices)
        return {"tokens": self.tokens[idx], "prompt_mask": self.prompt_mask[idx]}
