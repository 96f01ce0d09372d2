"""The text tokenizer: a BPE (or character-level) model trained here with Hugging Face ``tokenizers``.

The tokenizer is a few kilobytes of JSON, so it travels inside the run config (``cfg["text"]["tokenizer"]``)
and every checkpoint rebuilds it without a separate file. Special tokens: ``<|mask|>`` (the absorbing state of
masked diffusion), ``<|eos|>`` (end of text, also the padding an answer is filled with, as in LLaDA's SFT),
``<|bos|>`` (start of every sequence, so an autoregressive model predicts the first real token) and
``<|unk|>`` (characters the corpus never had).
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

MASK, EOS, BOS, UNK = "<|mask|>", "<|eos|>", "<|bos|>", "<|unk|>"
SPECIAL_TOKENS = (MASK, EOS, BOS, UNK)
TOKENIZER_KINDS = ("bpe", "char")


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` plus the ids of its special tokens and padding to a fixed length."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        ids = {tok: tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS}
        self.mask_id, self.eos_id, self.bos_id = ids[MASK], ids[EOS], ids[BOS]
        missing = [tok for tok, i in ids.items() if i is None and tok != UNK]
        if missing:
            from robodiff.diffusion.masked import GenerationSettingsError

            raise GenerationSettingsError(f"tokenizer lacks the special tokens {missing}; train it with "
                                          f"robodiff.text.tokenizer.train_tokenizer")

    @classmethod
    def from_json(cls, text: str) -> "TextTokenizer":
        return cls(Tokenizer.from_str(text))

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str, bos: bool = True) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if bos else ids

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> str:
        """Text of ``ids`` without special tokens; by default only up to the first EOS."""
        ids = [int(i) for i in ids]
        if stop_at_eos and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def show(self, ids: Iterable[int]) -> str:
        """Every token, masks and EOS included, for traces: ``Alice| is| the| <|mask|>``."""
        return "|".join(self.tokenizer.id_to_token(int(i)) or "?" for i in ids).replace("\u2581", " ")


def train_tokenizer(lines: Iterable[str], kind: str = "bpe", vocab_size: int = 1024) -> TextTokenizer:
    """Train a tokenizer on ``lines``: "bpe" merges up to ``vocab_size`` tokens, "char" keeps single characters.

    Words are split on whitespace and punctuation marks stand alone; a space is kept as the word-start marker (SentencePiece's metaspace), so
    decoding restores the spacing exactly.
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer kind {kind!r}; choose one of {list(TOKENIZER_KINDS)}")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.Metaspace()
    # "char": a vocabulary no larger than the alphabet leaves BPE nothing to merge
    trainer = trainers.BpeTrainer(vocab_size=vocab_size if kind == "bpe" else 1, special_tokens=list(SPECIAL_TOKENS),
                                  min_frequency=1, show_progress=False)
    tok.train_from_iterator(list(lines), trainer)
    return TextTokenizer(tok)
