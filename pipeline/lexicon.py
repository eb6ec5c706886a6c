"""Pronunciation lexicon: per-project respellings (`Siobhan = "Shiv-awn"`), since Qwen3-TTS takes neither IPA nor SSML.

A lexicon is TOML `word = "respelling"`, from a cast file's `[lexicon]` table and/or a `--lexicon FILE` (the file's
entries win). Entries match whole words, ignoring case (`Siobhan's` matches `Siobhan`), longest entry first, and are
applied to every spoken text — dialogue and narration — before line keys are made, so changing one entry changes
exactly the keys of the lines that contain its word. Subtitles and the cue sheet keep the text as written.

`candidates(screenplay)` lists the words most likely to need a respelling: character names, capitalised words that
are not sentence starts, and unusual spellings, with how often they are spoken.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import CastFileError

LEXICON_VERSION = "1"


class LexiconError(CastFileError):
    """A lexicon file or table that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Lexicon:
    """Ordered (word, respelling) entries and where each came from."""

    entries: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] = ()
    _pattern: re.Pattern | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.entries:
            words = sorted((w for w, _ in self.entries), key=len, reverse=True)
            pattern = re.compile(r"(?<![\w'’])(" + "|".join(re.escape(w) for w in words) + r")(?![\w])",
                                 re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __contains__(self, word: str) -> bool:
        return word.casefold() in self._table

    @property
    def _table(self) -> dict[str, str]:
        return {w.casefold(): r for w, r in self.entries}

    def apply(self, text: str) -> str:
        """`text` with every entry's word respelled (whole words, any case)."""
        if self._pattern is None:
            return text
        table = self._table
        return self._pattern.sub(lambda m: table[m.group(1).casefold()], text)

    def hits(self, texts: Iterable[str]) -> Counter:
        """How many times each entry's word occurs in `texts` (entries as written)."""
        counts: Counter = Counter({w: 0 for w, _ in self.entries})
        if self._pattern is None:
            return counts
        by_fold = {w.casefold(): w for w, _ in self.entries}
        for t in texts:
            for m in self._pattern.finditer(t):
                counts[by_fold[m.group(1).casefold()]] += 1
        return counts

    def unused(self, texts: Iterable[str]) -> list[str]:
        """Entries whose word occurs in none of `texts`."""
        return [w for w, n in self.hits(texts).items() if n == 0]

    def merged(self, other: "Lexicon") -> "Lexicon":
        """This lexicon with `other`'s entries on top (same word, any case: other wins)."""
        table = {w.casefold(): (w, r) for w, r in self.entries}
        table.update({w.casefold(): (w, r) for w, r in other.entries})
        return Lexicon(tuple(table.values()), tuple(dict.fromkeys(self.sources + other.sources)))

    def to_json(self) -> dict:
        return {"entries": dict(self.entries), "sources": list(self.sources)}


EMPTY_LEXICON = Lexicon()


def parse_lexicon(raw: Any, where: str) -> Lexicon:
    """Validate a `word = "respelling"` table; `where` names it in errors (a file, or a cast file's [lexicon])."""
    if not isinstance(raw, Mapping):
        raise LexiconError(f"{where}: expected a table of word = \"respelling\" entries, got {type(raw).__name__}.")
    entries: list[tuple[str, str]] = []
    for word, value in raw.items():
        if isinstance(value, Mapping):
            raise LexiconError(f"{where}: {word}: expected a respelling string, got a table. Write "
                               f"{word} = \"respelling\" (quote words with dots or spaces: \"Mr. X\" = \"…\").")
        if not isinstance(value, str):
            raise LexiconError(f"{where}: {word}: expected a respelling string, got {value!r}. Write "
                               f"{word} = \"respelling\".")
        if not value.strip():
            raise LexiconError(f"{where}: {word}: the respelling is empty. Give how the word is said, e.g. "
                               f"{word} = \"{_example(word)}\", or remove the entry.")
        if not str(word).strip() or not re.search(r"\w", str(word)):
            raise LexiconError(f"{where}: {word!r}: not a word. Remove the entry.")
        entries.append((str(word).strip(), " ".join(value.split())))
    return Lexicon(tuple(entries), (where,))


def _example(word: str) -> str:
    return "-".join(re.findall(r".{1,3}", word.lower())) or "…"


def load_lexicon(path: str | Path) -> Lexicon:
    """Read a lexicon TOML file (errors name the file and the key)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LexiconError(f"Lexicon file not found: {path}. Pass an existing TOML file to --lexicon.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LexiconError(f"{path}: cannot read the lexicon ({e}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LexiconError(f"{path}: not valid TOML ({e}). Fix the line it names; entries look like "
                           "Siobhan = \"Shiv-awn\".") from None
    if "lexicon" in data and isinstance(data["lexicon"], Mapping) and len(data) == 1:
        data = data["lexicon"]  # a file with a [lexicon] table, as in a cast file, is fine too
    return parse_lexicon(data, str(path))


# ------------------------------------------------------------------------------------------------ candidates


_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_UNUSUAL_RE = re.compile(  # letters English spelling rarely uses this way (Gaelic bh/dh, Polish cz/sz, Dutch ij …)
    r"[^\x00-\x7f]|([a-z])\1\1|^(?:mc|mac)[bcdfghjklmnpqrstvwxz]|bh|dh|mh|zs|cz|szcz|ij|aoi|aeo|uai|q(?!u)|^x",
    re.IGNORECASE)
COMMON = frozenset("""
    a an and are as at be but by for from he her his i if in is it its me my no not of on or our she so that the their
    them then there they this to up us was we what when where who why will with you your yes oh okay ok hey mr mrs ms
    dr sir mother father mom dad god
""".split())


@dataclass(frozen=True)
class Candidate:
    word: str
    count: int
    reasons: tuple[str, ...]
    in_lexicon: bool

    def to_json(self) -> dict:
        return {"word": self.word, "count": self.count, "reasons": list(self.reasons), "in_lexicon": self.in_lexicon}


def spoken_texts(screenplay, narration_mode: str = "action") -> list[str]:
    """Every text the read-through speaks: dialogue lines and lyrics, and the narration of `narration_mode`."""
    from .fountain import speech_text
    from .spoken import narration

    names = screenplay.characters()
    out: list[str] = []
    for scene in screenplay.scenes:
        out.extend(i.text for i in narration(scene, narration_mode, names))
        for d in scene.dialogues:
            out.extend(speech_text(p.text) for p in d.spoken)
    return [t for t in out if t.strip()]


def candidates(screenplay, lexicon: Lexicon = EMPTY_LEXICON, narration_mode: str = "action",
               limit: int | None = None) -> list[Candidate]:
    """Words likely to need a respelling, most frequent first (see the module docstring)."""
    texts = spoken_texts(screenplay, narration_mode)
    counts: Counter = Counter()
    forms: dict[str, Counter] = {}
    reasons: dict[str, set[str]] = {}
    name_words = {w.casefold() for n in screenplay.characters() for w in _WORD_RE.findall(n)}
    for text in texts:
        for m in _WORD_RE.finditer(text):
            word = re.sub(r"['’]s$", "", m.group(0))  # Margaret's → Margaret
            key = word.casefold()
            counts[key] += 1
            forms.setdefault(key, Counter())[word] += 1
            why = reasons.setdefault(key, set())
            if key in name_words:
                why.add("character name")
            before = text[:m.start()].rstrip(" \"'“‘(")
            if word[0].isupper() and not word.isupper() and before and before[-1] not in ".!?:" and len(word) > 1:
                why.add("capitalised mid-sentence")
            if _UNUSUAL_RE.search(word):
                why.add("unusual spelling")
    out = []
    for key, why in reasons.items():
        if not why or key in COMMON or len(key) < 2:
            continue
        word = forms[key].most_common(1)[0][0]
        out.append(Candidate(word, counts[key], tuple(sorted(why)), key in lexicon))
    out.sort(key=lambda c: (-c.count, c.word.casefold()))
    return out[:limit] if limit else out
