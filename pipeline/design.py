"""Voice design: a profile becomes a written description, the description becomes N auditions (VoiceDesign),
and `pick` chooses the audition that keeps the cast most distinct.

- `describe(profile)`: one or two sentences, at most ~40 words (the VoiceDesign model's sweet spot), naming
  gender, age, up to three traits and the summary's first sentence.
- `audition(...)`: one WAV per seed in `<out_dir>/<slug>/audition-<i>.wav` (kept so a person can listen and pin
  another in the cast file), with a JSON sidecar holding its content key: a rerun with the same description,
  model, seed and text reuses the file instead of calling the model again.
- `pick(...)`: maximise the minimum cosine distance to the voices already cast (speaker x-vectors from the Base
  model's speaker encoder). For the first character there is nothing to be distinct from, so the candidate closest
  to the centroid of its own candidates wins: the most typical rendering of the description, not an outlier.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from .analysis.profile import CharacterProfile
from .audio import Audio, read_audio, write_audio
from .files import atomic_write_json, slug
from .keys import content_key

AUDITION_VERSION = "1"
MAX_DESCRIPTION_WORDS = 40
# A pangram plus sibilants, a question (rising intonation) and varied vowels: every audition says the same text.
PINNED_REASON = "pinned by cast file"

_NUMBER_WORDS = {1: "tens", 2: "twenties", 3: "thirties", 4: "forties", 5: "fifties", 6: "sixties",
                 7: "seventies", 8: "eighties", 9: "nineties"}


# --------------------------------------------------------------------------------------------- describe


def _age_words(profile: CharacterProfile) -> tuple[str, str]:
    """(age adjective, age phrase): ("elderly", "in her seventies"), ("", "about 10 years old") …"""
    if profile.age_range is None:
        return "", ""
    lo, hi = profile.age_range
    mid = (lo + hi) / 2
    adjective = ("" if mid < 13 else "teenage" if mid < 20 else "young" if mid < 36 else "middle-aged" if mid < 60
                 else "elderly")
    pronoun = {"male": "his", "female": "her"}.get(profile.gender, "their")
    if hi - lo <= 4:
        phrase = f"about {round(mid)} years old"
    elif lo // 10 == hi // 10 and lo >= 20:
        phrase = f"in {pronoun} {_NUMBER_WORDS[lo // 10]}"
    else:
        phrase = f"aged {lo} to {hi}"
    return adjective, phrase


def _first_sentence(text: str) -> str:
    from .analysis.heuristic import split_sentences

    parts = split_sentences(text)
    return parts[0] if parts else ""


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def describe(profile: CharacterProfile) -> str:
    """A VoiceDesign description: 'A weathered, stubborn, elderly female voice with a dry wit, in her seventies.
    A weathered, stubborn old keeper with a dry wit.' — trimmed to at most MAX_DESCRIPTION_WORDS words."""
    adjective, age_phrase = _age_words(profile)
    single = [t for t in profile.traits if " " not in t.strip()][:3]
    multi = [t for t in profile.traits if " " in t.strip()][:1]
    child = profile.age_range is not None and sum(profile.age_range) / 2 < 13
    if child:
        noun = {"male": "boy's voice", "female": "girl's voice"}.get(profile.gender, "child's voice")
    else:
        noun = {"male": "male voice", "female": "female voice", "nonbinary": "androgynous voice"}.get(
            profile.gender, "voice")
    if not single and not adjective and noun == "voice":
        single = ["clear", "natural"]  # nothing known: ask for a neutral voice rather than nothing
    head = " ".join(w for w in (", ".join(single), adjective, noun) if w)
    first = f"{_article(head)} {head}"
    if multi:
        first += f" with {_article(multi[0]).lower()} {multi[0]}"
    if age_phrase:
        first += f", {age_phrase}"
    first += "."
    sentences = [first]
    summary = profile.summary.strip()
    if summary:
        s = _first_sentence(summary)
        if s and s[-1] not in ".!?":
            s += "."
        # a name means nothing to the voice model (and the no-introduction summary is just the name and counts)
        named = profile.name and re.search(r"(?<!\w)" + re.escape(profile.name) + r"(?!\w)", s, re.IGNORECASE)
        if not named and len(first.split()) + len(s.split()) <= MAX_DESCRIPTION_WORDS:
            sentences.append(s)
    text = " ".join(sentences)
    words = text.split()
    if len(words) > MAX_DESCRIPTION_WORDS:
        text = " ".join(words[:MAX_DESCRIPTION_WORDS]).rstrip(",;") + "."
    return text


# --------------------------------------------------------------------------------------------- auditions


@dataclass(frozen=True)
class Audition:
    """One candidate voice: `text` spoken in a voice designed from `description` with `seed`."""

    character: str
    index: int
    seed: int
    description: str
    text: str
    path: str  # the WAV (kept for people to listen to)
    digest: str  # Audio.digest() of the samples
    key: str  # audition_key(...)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Audition":
        return cls(**data)

    def load(self) -> Audio:
        return read_audio(self.path)


def audition_key(description: str, design_model_id: str, seed: int, text: str) -> str:
    return content_key("audition", AUDITION_VERSION,
                       {"description": description, "model": design_model_id, "seed": seed, "text": text})


class AuditionSidecar(BaseModel):
    """The JSON beside each audition WAV: what made it. Its `key` lets a rerun reuse the WAV."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str
    character: str
    seed: int
    description: str
    text: str
    model: str  # the design model's identity


def audition_paths(out_dir: str | Path, character: str, index: int) -> tuple[Path, Path]:
    """(WAV, JSON sidecar) of one audition: `<out_dir>/<slug>/audition-<index>.wav` (index from 0)."""
    folder = Path(out_dir) / slug(character)
    return folder / f"audition-{index}.wav", folder / f"audition-{index}.json"


def _cached(wav: Path, sidecar: Path, key: str) -> Audio | None:
    try:
        if AuditionSidecar.model_validate_json(sidecar.read_text(encoding="utf-8")).key == key and wav.is_file():
            return read_audio(wav)
    except (OSError, ValueError):  # missing, unreadable or not our schema (ValidationError): design it again
        return None
    return None


def audition(engine, description: str, n: int, seeds: Sequence[int], text: str, out_dir: str | Path,
             character: str, language: str = "en") -> list[Audition]:
    """N auditions (one per seed) as WAV files; files whose key is unchanged are reused, the rest are designed in
    one engine call. Audio is written as float32 WAV so its digest survives the round trip."""
    if n < 1 or len(seeds) < n:
        raise ValueError(f"audition needs n >= 1 and at least n seeds; got n={n}, {len(seeds)} seeds")
    model = engine.info().design_model
    seeds = [int(s) for s in seeds[:n]]
    keys = [audition_key(description, model, s, text) for s in seeds]
    audios: list[Audio | None] = [_cached(*audition_paths(out_dir, character, i), keys[i]) for i in range(n)]
    missing = [i for i, a in enumerate(audios) if a is None]
    if missing:
        made = engine.design(description, text, [seeds[i] for i in missing], language)
        if len(made) != len(missing):
            raise RuntimeError(f"engine {engine.name} returned {len(made)} auditions for {len(missing)} seeds")
        for i, a in zip(missing, made):
            wav, sidecar = audition_paths(out_dir, character, i)
            write_audio(wav, a)
            audios[i] = read_audio(wav)
            atomic_write_json(sidecar, AuditionSidecar(key=keys[i], character=character, seed=seeds[i],
                                                       description=description, text=text, model=model).model_dump())
    return [
        Audition(character=character, index=i, seed=seeds[i], description=description, text=text,
                 path=str(audition_paths(out_dir, character, i)[0]), digest=audios[i].digest(), key=keys[i])
        for i in range(n)
    ]


# --------------------------------------------------------------------------------------------- pick


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0
    return float(1.0 - np.dot(a, b) / (na * nb))


def pick(candidates_embeddings: Sequence[np.ndarray | None],
         cast_embeddings: Mapping[str, np.ndarray] | Sequence[np.ndarray] = (),
         pinned: int | None = None) -> tuple[int, str]:
    """(index, reason). A pin wins. Otherwise maximise the minimum cosine distance to the voices already cast
    (ties: the lower index); with nothing cast yet, the candidate closest to its candidates' centroid. A candidate
    whose embedding is None (too short to embed) is skipped; with no embeddings at all (an engine without a speaker
    encoder) index 0."""
    n = len(candidates_embeddings)
    if n == 0:
        raise ValueError("pick needs at least one candidate")
    if pinned is not None:
        if not 0 <= pinned < n:
            raise ValueError(f"pinned audition {pinned} is out of range 0..{n - 1}")
        return pinned, PINNED_REASON
    usable = [i for i, e in enumerate(candidates_embeddings) if e is not None]
    if not usable:
        return 0, "no speaker embeddings from this engine: the first audition is used"
    skipped = "" if len(usable) == n else (
        f"; auditions without an embedding were skipped: {', '.join(f'#{i}' for i in range(n) if i not in usable)}")
    cands = {i: np.asarray(candidates_embeddings[i], dtype=np.float64).ravel() for i in usable}
    cast = dict(cast_embeddings) if isinstance(cast_embeddings, Mapping) else {
        f"voice {i}": e for i, e in enumerate(cast_embeddings)}
    cast = {k: v for k, v in cast.items() if v is not None}
    if len(usable) == 1:
        return usable[0], ("only one audition" if n == 1 else f"the only audition with an embedding{skipped}")
    if not cast:
        centroid = np.mean([c / (np.linalg.norm(c) or 1.0) for c in cands.values()], axis=0)
        dists = {i: cosine_distance(c, centroid) for i, c in cands.items()}
        best = min(usable, key=lambda i: (dists[i], i))
        listing = ", ".join(f"#{i} {d:.3f}" for i, d in dists.items())
        return best, (f"first voice cast: audition {best} is closest to the centroid of its {len(usable)} auditions "
                      f"(cosine distance {listing}){skipped}")
    nearest: dict[int, tuple[float, str]] = {}
    for i, c in cands.items():
        nearest[i] = min((cosine_distance(c, v), name) for name, v in cast.items())
    best = max(usable, key=lambda i: (nearest[i][0], -i))
    listing = ", ".join(f"#{i} {d:.3f} to {who}" for i, (d, who) in nearest.items())
    return best, (f"most distinct from the cast: audition {best}'s nearest cast voice is {nearest[best][1]} at cosine "
                  f"distance {nearest[best][0]:.3f} (nearest per audition: {listing}){skipped}")
