"""Captions that describe each training image, and the word-level tokenizer that reads them.

Digits: "a handwritten seven". Push-T frames: where the T is and how it is turned, from the recorded state,
e.g. "the T is at the top left, turned 45 degrees clockwise". Directions are as seen in the rendered frame
(pixel y grows downwards, so a positive block angle turns the T clockwise on screen).

The captions come from fixed templates, so the vocabulary is known up front: the tokenizer is a
``tokenizers`` WordLevel model over exactly those words (no training, nothing to download), and a config can
rebuild it from ``VOCABULARY``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing

from robodiff.image.digits import DIGIT_WORDS

PAD, UNK, BOS = "<pad>", "<unk>", "<bos>"  # every caption starts with BOS, so the empty caption is [BOS]
_ROWS, _COLS = ("top", "middle", "bottom"), ("left", "centre", "right")
_WORDS = sorted({"a", "handwritten", *DIGIT_WORDS, "the", "t", "is", "at", "in", ",", "upright", "upside",
                 "down", "turned", "degrees", "clockwise", "anticlockwise", "45", "90", "135", *_ROWS, *_COLS})
VOCABULARY = (PAD, UNK, BOS, *_WORDS)
MAX_TOKENS = 16
WORLD_SIZE = 512.0  # Push-T positions are pixels of the 512x512 world the frames are rendered from


def digit_caption(label: int) -> str:
    return f"a handwritten {DIGIT_WORDS[int(label)]}"


def grid_cell(x, y, size: float = WORLD_SIZE) -> np.ndarray:
    """The 3x3 grid cell (row * 3 + col, 0 = top left) a Push-T caption names for points (x, y) of a
    size x size frame (scalars or arrays; int64)."""
    col, row = (np.clip(np.floor(np.asarray(v, dtype=np.float64) * 3 / size), 0, 2).astype(np.int64) for v in (x, y))
    return row * 3 + col


def cell_centre(cell: int, size: float = WORLD_SIZE) -> tuple[float, float]:
    """(x, y) of the middle of grid cell ``cell`` in a size x size frame: the point pusht_caption names so."""
    return ((cell % 3 + 0.5) * size / 3, (cell // 3 + 0.5) * size / 3)


def cell_phrase(cell: int) -> str:
    """How a caption says where grid cell ``cell`` is: "at the top left", ..., "in the centre"."""
    row, col = _ROWS[cell // 3], _COLS[cell % 3]
    return "in the centre" if cell == 4 else f"at the {row} {col}"


def pusht_caption(x: float, y: float, angle: float) -> str:
    """Where the T (centre ``x, y`` in world pixels) is in a 3x3 grid and its angle to the nearest 45 deg."""
    where = cell_phrase(int(grid_cell(x, y)))
    deg = int(round(math.degrees(angle) / 45.0)) * 45 % 360
    if deg == 0:
        turn = "upright"
    elif deg == 180:
        turn = "upside down"
    elif deg < 180:
        turn = f"turned {deg} degrees clockwise"
    else:
        turn = f"turned {360 - deg} degrees anticlockwise"
    return f"the T is {where}, {turn}"


def pusht_captions(state: np.ndarray, keypoint: np.ndarray | None = None) -> list[str]:
    """Captions for Push-T rows: the T's centre is the mean of its 9 keypoints when the buffer has them,
    else the recorded block origin (state[:, 2:4]); its angle is state[:, 4]."""
    centre = keypoint.mean(axis=1) if keypoint is not None else state[:, 2:4]
    return [pusht_caption(cx, cy, a) for (cx, cy), a in zip(centre, state[:, 4])]


class CaptionTokenizer:
    """Caption strings -> padded int64 ids (B, MAX_TOKENS) and a bool mask of real tokens, BOS first."""

    def __init__(self, vocabulary=VOCABULARY, max_tokens: int = MAX_TOKENS):
        self.vocabulary = list(vocabulary)
        self.max_tokens = max_tokens
        self.tok = Tokenizer(WordLevel({w: i for i, w in enumerate(self.vocabulary)}, unk_token=UNK))
        self.tok.pre_tokenizer = Whitespace()  # words and punctuation
        self.tok.post_processor = TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, self.vocabulary.index(BOS))])
        self.tok.enable_padding(pad_id=self.vocabulary.index(PAD), pad_token=PAD, length=max_tokens)
        self.tok.enable_truncation(max_tokens)
        self.pad_id = self.vocabulary.index(PAD)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __call__(self, captions: list[str]) -> torch.Tensor:
        unknown = {w for c in captions for w, _ in self.tok.pre_tokenizer.pre_tokenize_str(c.lower())
                   if w not in self.vocabulary}
        if unknown:
            raise ValueError(f"caption words {sorted(unknown)} are not in the vocabulary; the model knows: "
                             f"{' '.join(self.vocabulary[3:])}")
        ids = [e.ids for e in self.tok.encode_batch([c.lower() for c in captions])]
        return torch.tensor(ids, dtype=torch.long)
