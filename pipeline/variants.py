"""Delivery variants: a character's voice performing one delivery class (shouting, whispering, crying …).

A locked voice renders through Qwen3-TTS Base in-context cloning, which carries the reference clip's style into what
it says. So for each delivery class a character uses in at least `[delivery] min_lines` lines (pipeline.direction's
classes, counted over spoken lines), casting designs a variant: VoiceDesign on the character's description plus the
delivery (`variant_description`), `[delivery] auditions` seeded takes, each embedded like a lock reference; the take
whose speaker x-vector is closest to the character's neutral voice is kept only if the cosine similarity is at
least `min_similarity` (`gate`), else there is no variant and the result says why. A kept take is locked like any
voice (clone prompt, digest, versioned file) in the character's lock folder, its `params` naming its family
(`family`, `delivery`, `neutral`: the neutral lock's digest). Lines with that delivery render with the variant
(pipeline.render.line_voice); all others with the neutral voice.

Cast file (pipeline.castfile): `variants = false` switches a character's variants off; `variants.shouting =
{ audition = 2 }` pins which take to keep (and asks for the variant even below `min_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .design import Audition, audition, cosine_distance
from .direction import BY_CLASS, DELIVERY_CLASSES
from .errors import CastFileError
from .files import slug
from .keys import content_key, seed_from_key
from .lock import LOCK_SUFFIX, lock_problem, save_lock

VARIANTS_VERSION = "1"
LOCKED, REJECTED, SKIPPED = "locked", "rejected", "skipped"


@dataclass(frozen=True)
class VariantResult:
    """How one delivery variant of one character was cast. `status`: locked | rejected (the similarity gate) |
    skipped (the character's voice cannot have variants)."""

    delivery: str
    lines: int  # spoken lines of the character with this delivery
    status: str
    reason: str
    description: str = ""
    auditions: tuple[Audition, ...] = ()
    similarities: tuple[float | None, ...] = ()  # cosine of each take's x-vector to the neutral voice's
    chosen: int | None = None
    lock_path: str | None = None
    lock_digest: str | None = None

    @property
    def similarity(self) -> float | None:
        return self.similarities[self.chosen] if self.chosen is not None and self.similarities else None

    @property
    def locked(self) -> bool:
        return self.status == LOCKED and self.lock_digest is not None

    def to_json(self) -> dict:
        return {"delivery": self.delivery, "lines": self.lines, "status": self.status, "reason": self.reason,
                "description": self.description, "auditions": [a.to_json() for a in self.auditions],
                "similarities": list(self.similarities), "chosen": self.chosen, "similarity": self.similarity,
                "lock_path": self.lock_path, "lock_digest": self.lock_digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VariantResult":
        d = {k: v for k, v in data.items() if k != "similarity"}
        d["auditions"] = tuple(Audition.from_json(a) for a in d.get("auditions", ()))
        d["similarities"] = tuple(d.get("similarities", ()))
        return cls(**d)


# --------------------------------------------------------------------------------------------- what to make


def check_variant_pins(entry, auditions: int) -> None:
    """A cast file's `variants.<class> = { audition = i }` must name one of the K variant takes."""
    for delivery, pinned in getattr(entry, "variant_pins", ()) or ():
        if pinned is not None and pinned >= auditions:
            raise CastFileError(
                f"{entry.where(f'variants.{delivery}')}: audition {pinned} does not exist: delivery.auditions = "
                f"{auditions} makes variant auditions 0 … {auditions - 1}. Pick one of those or raise "
                f"delivery.auditions.")


def wanted_variants(counts: Mapping[str, int], settings, entry=None) -> list[tuple[str, int, int | None]]:
    """(delivery class, lines, pinned take) of each variant a character should get, in the classes' order: every
    class with at least `min_lines` lines, and every class the cast file pins that the character uses at all."""
    d = settings.delivery
    if not d.variants or (entry is not None and entry.variants is False):
        return []
    pins = dict(getattr(entry, "variant_pins", ()) or ())
    out = []
    for delivery in DELIVERY_CLASSES:
        n = counts.get(delivery, 0)
        if n >= d.min_lines or (delivery in pins and n > 0):
            out.append((delivery, n, pins.get(delivery)))
    return out


def variant_description(description: str, delivery: str) -> str:
    """The character's VoiceDesign description with the delivery's performance phrase after it."""
    phrase = BY_CLASS[delivery].design
    return f"{description.rstrip().rstrip('.')}. {phrase[:1].upper()}{phrase[1:]}."


def variant_seeds(character: str, delivery: str, settings) -> list[int]:
    """Seeds of a variant's K takes, derived from `casting.audition_seed`, the character and the delivery."""
    base = seed_from_key(content_key("variant-seed", VARIANTS_VERSION, {
        "seed": settings.casting.audition_seed, "character": character, "delivery": delivery}))
    return [(base + i) % (2**31 - 1) for i in range(settings.delivery.auditions)]


def variant_label(character: str, delivery: str) -> str:
    """The name a variant's auditions and lock carry: `MARGARET (shouting)`."""
    return f"{character} ({delivery})"


# --------------------------------------------------------------------------------------------- the gate


def similarities(embeddings: Sequence[np.ndarray | None], neutral: np.ndarray | None) -> list[float | None]:
    """Cosine similarity of each take's speaker vector to the neutral voice's (None where either is missing)."""
    if neutral is None:
        return [None] * len(embeddings)
    return [None if e is None else round(1.0 - cosine_distance(e, neutral), 6) for e in embeddings]


def gate(sims: Sequence[float | None], min_similarity: float, pinned: int | None = None) -> tuple[int | None, str]:
    """(index of the take to lock or None, why). A pin wins (its similarity is reported); otherwise the take
    closest to the neutral voice, kept only if its similarity is at least `min_similarity`."""
    listing = ", ".join(f"#{i} {s:.3f}" if s is not None else f"#{i} n/a" for i, s in enumerate(sims))
    if pinned is not None:
        s = sims[pinned] if pinned < len(sims) else None
        said = f"{s:.3f}" if s is not None else "n/a"
        return pinned, f"audition {pinned} pinned by cast file (similarity to the neutral voice {said}; all: {listing})"
    usable = [i for i, s in enumerate(sims) if s is not None]
    if not usable:
        return None, ("no variant: no speaker embeddings to compare with the neutral voice, so no take can be shown "
                      "to be the same person; lines with this delivery use the neutral voice")
    best = max(usable, key=lambda i: (sims[i], -i))
    if sims[best] >= min_similarity:
        return best, (f"audition {best} is closest to the neutral voice: similarity {sims[best]:.3f} ≥ "
                      f"delivery.min_similarity {min_similarity} (all: {listing})")
    return None, (f"no variant: the closest take, audition {best}, has similarity {sims[best]:.3f} to the neutral "
                  f"voice, below delivery.min_similarity {min_similarity} (all: {listing}); lines with this delivery "
                  f"use the neutral voice. Pin a take with variants.<class> = {{ audition = i }}, lower "
                  f"delivery.min_similarity, or raise delivery.auditions")


# --------------------------------------------------------------------------------------------- locks


def variant_lock_path(root: str | Path, character: str, delivery: str, digest: str) -> Path:
    """`<root>/<slug>/<slug>-<delivery>-<digest[:12]>.lock.safetensors`: beside the neutral locks (one family
    folder per character), never overwriting an older lock."""
    s = slug(character)
    return Path(root) / s / f"{s}-{slug(delivery)}-{digest[:12]}{LOCK_SUFFIX}"


def lock_variant(engine, take: Audition, settings, lock_root: str | Path, character: str, delivery: str,
                 neutral_digest: str) -> tuple[Path, str]:
    """Freeze a variant take into a lock of the character's family; (path, digest)."""
    lock = engine.lock(take.load(), take.text, settings.render.language, name=variant_label(character, delivery),
                       description=take.description, seed=take.seed)
    lock = replace(lock, params={**lock.params, "family": character, "delivery": delivery,
                                 "neutral": neutral_digest})
    digest = lock.digest()
    path = variant_lock_path(lock_root, character, delivery, digest)
    if not path.is_file() or lock_problem(path, digest) is not None:  # a damaged or replaced file is rewritten
        save_lock(lock, path)
    return path, digest


# --------------------------------------------------------------------------------------------- one variant


def cast_variant(engine, character: str, delivery: str, lines: int, pinned: int | None, description: str,
                 neutral_embedding: np.ndarray | None, neutral_digest: str, settings, out_dir: str | Path,
                 lock_root: str | Path) -> VariantResult:
    """design → gate → lock for one delivery variant of one character (the steps `cast_script` and the cast flow
    run after the character's neutral lock)."""
    from .casting import audition_embeddings

    vdesc = variant_description(description, delivery)
    seeds = variant_seeds(character, delivery, settings)
    takes = audition(engine, vdesc, settings.delivery.auditions, seeds, settings.casting.sample_text, out_dir,
                     variant_label(character, delivery), settings.render.language)
    sims = similarities(audition_embeddings(engine, takes), neutral_embedding)
    index, reason = gate(sims, settings.delivery.min_similarity, pinned)
    base = VariantResult(delivery=delivery, lines=lines, status=REJECTED, reason=reason, description=vdesc,
                         auditions=tuple(takes), similarities=tuple(sims))
    if index is None:
        return base
    path, digest = lock_variant(engine, takes[index], settings, lock_root, character, delivery, neutral_digest)
    return replace(base, status=LOCKED, chosen=index, lock_path=str(path), lock_digest=digest)


def skipped_variants(wanted: Sequence[tuple[str, int, int | None]], why: str) -> tuple[VariantResult, ...]:
    """Results for a voice that cannot have variants (a preset, a pinned lock, an extra), saying why."""
    return tuple(VariantResult(delivery=c, lines=n, status=SKIPPED, reason=f"no variant: {why}")
                 for c, n, _ in wanted)


def variant_voices(results: Mapping[str, Sequence[VariantResult]]) -> dict[str, dict[str, str]]:
    """{character: {delivery class: lock digest}} of the locked variants (for pipeline.render.plan_line_jobs)."""
    return {name: {v.delivery: v.lock_digest for v in vs if v.locked}
            for name, vs in results.items() if any(v.locked for v in vs)}


def family_variants(lock_file: str | Path, lock) -> list:
    """The variant locks beside `lock_file` whose params name `lock` as their neutral voice, one per delivery class
    (the newest when a re-cast left older ones), sorted by class."""
    from .lock import list_locks, load_lock

    digest = lock.digest()
    newest: dict[str, tuple[str, str, Path]] = {}
    for path, info in list_locks(Path(lock_file).parent):
        params = info.get("params") or {}
        delivery = params.get("delivery")
        if params.get("neutral") != digest or not delivery:
            continue
        candidate = (str(info.get("created", "")), str(path), path)
        if delivery not in newest or candidate[:2] > newest[delivery][:2]:
            newest[delivery] = candidate
    return [load_lock(newest[d][2]) for d in sorted(newest)]
