"""Long speeches split into pieces a speech model renders well.

Qwen3-TTS prosody drifts past roughly 10–12 s of speech in one generation, and very short generations get clipped.
So a line whose estimated length exceeds `render.max_chunk_seconds` is split at sentence boundaries, a run-on
sentence still too long at clause boundaries (, ; : — –), and a clause still too long between words; pieces shorter
than `render.min_chunk_seconds` merge with a neighbour while the merge stays under the limit. The estimate is
words ÷ `render.speaking_rate` (words per second): a plain, documented guess, not a measurement.
"""

from __future__ import annotations

import re

_SENTENCE_RE = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=\S)")
_CLAUSE_RE = re.compile(r"(?<=[,;:])\s+|\s+(?=[—–]\s)|(?<=\s[—–])\s+|\s+--\s+")


def words(text: str) -> int:
    return len(text.split())


def estimate_seconds(text: str, rate: float) -> float:
    """Estimated speech length of `text` at `rate` words per second."""
    return words(text) / rate


_ABBREVIATION_RE = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|Prof|Capt|Sgt|Lt|Col|Gen|vs|etc|e\.g|i\.e|[A-Z])\.$")


def _split(text: str, pattern: re.Pattern) -> list[str]:
    out: list[str] = []
    for p in (p.strip() for p in pattern.split(text) if p and p.strip()):
        if out and pattern is _SENTENCE_RE and _ABBREVIATION_RE.search(out[-1]):
            out[-1] = f"{out[-1]} {p}"  # "Mr. Reyes" is not two sentences
        else:
            out.append(p)
    return out


def _by_words(text: str, max_words: int) -> list[str]:
    ws = text.split()
    n = -(-len(ws) // max_words)
    size = -(-len(ws) // n)
    return [" ".join(ws[i:i + size]) for i in range(0, len(ws), size)]


def _atoms(text: str, max_words: int) -> list[str]:
    """Sentences; a sentence over the limit becomes clauses; a clause over the limit becomes even word runs."""
    out: list[str] = []
    for sentence in _split(text, _SENTENCE_RE):
        if words(sentence) <= max_words:
            out.append(sentence)
            continue
        for clause in _split(sentence, _CLAUSE_RE):
            out.extend([clause] if words(clause) <= max_words else _by_words(clause, max_words))
    return out


def _pack(atoms: list[str], max_words: int) -> list[str]:
    """Greedy: consecutive atoms joined while the piece stays within max_words."""
    pieces: list[str] = []
    for a in atoms:
        if pieces and words(pieces[-1]) + words(a) <= max_words:
            pieces[-1] = f"{pieces[-1]} {a}"
        else:
            pieces.append(a)
    return pieces


def _merge_tiny(pieces: list[str], min_words: int, max_words: int) -> list[str]:
    """A piece under min_words joins its shorter neighbour when the result stays within max_words (else it stays:
    a short piece is better than an over-long one)."""
    pieces = list(pieces)
    i = 0
    while len(pieces) > 1 and i < len(pieces):
        if words(pieces[i]) >= min_words:
            i += 1
            continue
        options = [j for j in (i - 1, i + 1) if 0 <= j < len(pieces) and words(pieces[j]) + words(pieces[i]) <= max_words]
        if not options:
            i += 1
            continue
        j = min(options, key=lambda k: words(pieces[k]))
        lo, hi = min(i, j), max(i, j)
        pieces[lo:hi + 1] = [f"{pieces[lo]} {pieces[hi]}"]
        i = lo
    return pieces


def split_speech(text: str, max_seconds: float, min_seconds: float, rate: float) -> list[str]:
    """`text` as one piece when it fits in max_seconds (by estimate), else pieces at sentence, then clause, then
    word boundaries, each within max_seconds, tiny ones merged (see the module docstring). Joining the pieces with
    single spaces gives the text back (whitespace folded)."""
    text = " ".join(text.split())
    max_words = max(1, int(max_seconds * rate))
    if words(text) <= max_words:
        return [text] if text else []
    min_words = max(0, int(round(min_seconds * rate)))
    return _merge_tiny(_pack(_atoms(text, max_words), max_words), min_words, max_words)
