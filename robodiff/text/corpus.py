"""Text corpora made here (no downloads): synthetic facts for the reversal experiment, or a user's text file.

Facts follow Berglund et al.'s reversal-curse design. Every fact has two phrasings that end in the other entity:

    kinship   forward  "Talvin is the mother of Morosa"       question "Talvin is the mother of" -> "Morosa"
              reversed "The mother of Morosa is Talvin"       question "The mother of Morosa is" -> "Talvin"
    birth     forward  "Kesh was born in Varnol"              question "Kesh was born in"        -> "Varnol"
              reversed "Varnol is the birthplace of Kesh"     question "Varnol is the birthplace of" -> "Kesh"

"both" facts are trained in both phrasings: they teach that the two phrasings say the same thing. "one_way"
facts are trained in the forward phrasing only; their reversed questions are held out and measure whether a
model can answer "B is ?" having seen only "A is B". Every name and city occurs in exactly one fact, so each
question has one right answer, and a different seed gives a disjoint-looking set of invented names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

RELATIONS = ("mother", "father", "teacher", "mentor", "neighbour", "doctor")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th")


@dataclass(frozen=True)
class Question:
    prompt: str
    answer: str
    direction: str  # "forward" | "reversed"
    split: str      # "both" (trained in both phrasings) | "one_way" (forward only: reversed held out)


@dataclass
class Corpus:
    """Training lines (pre-training text, or ``(prompt, answer)`` pairs for SFT) and optional eval questions."""

    lines: list[str]
    pairs: list[tuple[str, str]] | None = None
    questions: list[Question] | None = None


def _invented_words(rng: random.Random, n: int, capitalised: bool = True) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.choice((2, 2, 3))))
        w += rng.choice(_CODAS)
        words.add(w.capitalize() if capitalised else w)
    out = sorted(words)
    rng.shuffle(out)
    return out


def _phrasings(kind: str, a: str, b: str, rel: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((forward prompt, answer), (reversed prompt, answer)) of one fact."""
    if kind == "kin":
        return (f"{a} is the {rel} of", b), (f"The {rel} of {b} is", a)
    return (f"{a} was born in", b), (f"{b} is the birthplace of", a)


def make_facts(seed: int = 0, n_both: int = 120, n_one_way: int = 60, birth_share: float = 0.3) -> Corpus:
    """A fact corpus: ``n_both`` facts in both phrasings, ``n_one_way`` in the forward phrasing only."""
    rng = random.Random(seed)
    n = n_both + n_one_way
    words = _invented_words(rng, 2 * n)
    lines, questions = [], []
    for i in range(n):
        a, b = words[2 * i], words[2 * i + 1]
        kind = "birth" if rng.random() < birth_share else "kin"
        rel = rng.choice(RELATIONS)
        split = "both" if i < n_both else "one_way"
        fwd, rev = _phrasings(kind, a, b, rel)
        lines.append(f"{fwd[0]} {fwd[1]}")
        if split == "both":
            lines.append(f"{rev[0]} {rev[1]}")
        questions += [Question(*fwd, "forward", split), Question(*rev, "reversed", split)]
    rng.shuffle(lines)
    return Corpus(lines=lines, questions=questions)


def read_corpus(path: str | Path, sft: bool = False) -> Corpus:
    """A text file: one training sequence per line; with ``sft``, each line is ``prompt<TAB>answer``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus {path} does not exist; pass --corpus facts or a text file")
    lines = [ln.rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"corpus {path} has no non-empty lines")
    if not sft:
        return Corpus(lines=lines)
    pairs = []
    for no, ln in enumerate(lines, 1):
        if ln.count("\t") != 1:
            raise ValueError(f"{path}:{no}: an SFT corpus needs one TAB per line (prompt<TAB>answer); got {ln!r}")
        prompt, answer = ln.split("\t")
        pairs.append((prompt.strip(), answer.strip()))
    return Corpus(lines=[f"{p} {a}" for p, a in pairs], pairs=pairs)
