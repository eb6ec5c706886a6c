"""The casting loop, one character at a time: analyze -> design (auditions) -> pick -> lock.

`cast_characters` is the one loop; the steps that do the work come in as plain functions (`CastingSteps`):
`direct_steps` runs them straight on an engine (`cast_script`: benches, tests), the cast flow passes cached
Prefect-task wrappers (flows/cast.py). The order:

1. every speaking character is analyzed (heuristic or LLM), cast-file overrides applied;
2. characters with at most `extras_max_lines` lines (and nothing pinned) become extras;
3. the main cast is cast in order of line count (leads first, so minor voices are chosen to differ from them):
   a cast-file `lock` is used as is, a `preset` becomes a CustomVoice lock, otherwise N auditions are designed,
   one is picked for distinctness (or pinned by the cast file) and locked;
4. after its neutral lock, a designed main-cast character gets its delivery variants (pipeline.variants: each
   delivery class of its parentheticals used in at least `[delivery] min_lines` lines — `deliveries`, counted by
   `script_delivery_counts` — designed, gated on speaker similarity to the neutral voice and locked: the `variant`
   step);
5. the extras pool voices are designed and picked the same way (distinct from the main cast), and each extra is
   assigned one of them, round-robin in script order, matching gender where the pool allows;
6. the narrator (when `narration.mode` is not "none") is one more entry, cast last like a main character — its
   description is `narration.description` unless the cast file's [narrator] table says otherwise — so it is picked
   to differ from everyone, and switching narration on or off never changes another voice. It has no parentheticals,
   so no delivery variants. A script character named NARRATOR *is* the narrator: it is cast in its place among the
   characters, with the narrator's entry (and gets variants like any character).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .analysis import make_analyzer
from .analysis.profile import Analyzer, CharacterProfile, FieldEvidence, apply_overrides
from .audio import Audio
from .castfile import EMPTY_CAST, CastEntry, CastFile
from .design import Audition, audition, describe, pick
from .errors import CastFileError, VoiceLockError
from .evidence import Evidence
from .keys import content_key, seed_from_key
from .lock import load_lock, lock_path, lock_problem, prepare_reference, save_lock
from .spoken import NARRATOR
from .variants import VariantResult, cast_variant, check_variant_pins, skipped_variants, wanted_variants

CASTING_VERSION = "1"


@dataclass(frozen=True)
class CastResult:
    """How one character was cast. `source`: designed | lock (cast-file lock/.vox) | preset | extra."""

    name: str
    profile: CharacterProfile
    description: str
    auditions: tuple[Audition, ...]
    chosen: int | None
    reason: str
    lock_path: str
    lock_digest: str
    source: str = "designed"
    extra_voice: str | None = None  # the pool voice an extra shares
    variants: tuple[VariantResult, ...] = ()  # delivery variants (pipeline.variants)

    @property
    def chosen_audition(self) -> Audition | None:
        return self.auditions[self.chosen] if self.chosen is not None and self.auditions else None

    def to_json(self) -> dict:
        return {
            "name": self.name, "profile": self.profile.to_json(), "description": self.description,
            "auditions": [a.to_json() for a in self.auditions], "chosen": self.chosen, "reason": self.reason,
            "lock_path": self.lock_path, "lock_digest": self.lock_digest, "source": self.source,
            "extra_voice": self.extra_voice, "variants": [v.to_json() for v in self.variants],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CastResult":
        d = dict(data)
        d["profile"] = CharacterProfile.from_json(d["profile"])
        d["auditions"] = tuple(Audition.from_json(a) for a in d.get("auditions", ()))
        d["variants"] = tuple(VariantResult.from_json(v) for v in d.get("variants", ()))
        return cls(**d)


# --------------------------------------------------------------------------------------------- steps


def analyze_character(evidence: Evidence, analyzer: Analyzer, overrides: Mapping[str, Any] | None = None
                      ) -> CharacterProfile:
    """The analyzer's profile with the cast file's overrides on top."""
    return apply_overrides(analyzer.analyze(evidence), overrides)


def audition_seeds(name: str, settings, entry: CastEntry | None = None) -> list[int]:
    """Seeds of a character's N auditions: `seed + i` from the cast file, else derived from
    `casting.audition_seed` and the name (two characters with one description still get different voices)."""
    n = settings.casting.auditions
    if entry is not None and entry.seed is not None:
        base = entry.seed
    else:
        base = seed_from_key(content_key("audition-seed", CASTING_VERSION,
                                         {"seed": settings.casting.audition_seed, "character": name}))
    return [(base + i) % (2**31 - 1) for i in range(n)]


def check_audition_pin(entry: CastEntry | None, n: int) -> None:
    """A cast-file `audition` pin must name one of the N auditions (0 … N-1)."""
    if entry is not None and entry.audition is not None and entry.audition >= n:
        raise CastFileError(
            f"{entry.where('audition')}: audition {entry.audition} does not exist: casting.auditions = {n} makes "
            f"auditions 0 … {n - 1}. Pick one of those or raise casting.auditions."
        )


def character_description(profile: CharacterProfile, entry: CastEntry | None) -> str:
    """The cast file's pinned description, else `describe(profile)`."""
    return (entry.description if entry is not None else None) or describe(profile)


def audition_embeddings(engine, auditions: Sequence[Audition]) -> list[np.ndarray | None]:
    """Speaker vectors of the auditions, each taken from the reference its lock would get (`prepare_reference`:
    silence trimmed, 0.5 s appended), so a candidate's vector is the x-vector its lock will carry and very short
    takes are still long enough for the speaker encoder. None for a take that cannot be embedded (silent, or
    the engine refuses it): `pick` skips it instead of failing the whole character."""
    out: list[np.ndarray | None] = []
    for a in auditions:
        try:
            out.append(engine.speaker_embedding(prepare_reference(a.load())))
        except (ValueError, RuntimeError, VoiceLockError) as e:
            warnings.warn(f"{a.character}: audition {a.index} ({a.path}) cannot be embedded ({e}); skipped.",
                          stacklevel=2)
            out.append(None)
    return out


def pick_audition(engine, auditions: Sequence[Audition], cast_embeddings: Mapping[str, np.ndarray],
                  pinned: int | None = None) -> tuple[int, str, np.ndarray | None]:
    """(index, reason, embedding of the chosen audition). A cast-file `audition` pin wins."""
    embeddings = audition_embeddings(engine, auditions)
    index, reason = pick(embeddings, cast_embeddings, pinned=pinned)
    return index, reason, embeddings[index]


def lock_character(engine, audition: Audition, settings, lock_root: str | Path, *, name: str | None = None
                   ) -> tuple[Path, str]:
    """Freeze the chosen audition into a lock file; (path, digest). The path carries the digest, so an unchanged
    voice finds its existing file and a changed one gets a new file (old locks are kept)."""
    name = name or audition.character
    lock = engine.lock(audition.load(), audition.text, settings.render.language, name=name,
                       description=audition.description, seed=audition.seed)
    return _save(lock, lock_root, name)


def _save(lock, lock_root: str | Path, name: str) -> tuple[Path, str]:
    digest = lock.digest()
    path = lock_path(lock_root, name, digest)
    if not path.is_file() or lock_problem(path, digest) is not None:  # a damaged or replaced file is rewritten
        save_lock(lock, path)
    return path, digest


def pinned_lock(entry: CastEntry, settings, lock_root: str | Path) -> tuple[Path, str, Any]:
    """(path, digest, lock) of a cast-file `lock`: a lock file is validated and used where it is; a .vox is
    imported and saved under `lock_root`."""
    assert entry.lock is not None
    try:
        if entry.lock.suffix.lower() == ".vox":
            from .vox import import_vox

            lock = import_vox(entry.lock, language=settings.render.language)
            path, digest = _save(replace(lock, name=entry.name) if lock.name != entry.name else lock, lock_root,
                                 entry.name)
            return path, digest, lock
        lock = load_lock(entry.lock)
    except VoiceLockError as e:
        raise CastFileError(f"{entry.where('lock')}: {e}") from None
    return entry.lock, lock.digest(), lock


def preset_character(engine, entry: CastEntry, settings, lock_root: str | Path) -> tuple[Path, str, Any]:
    """(path, digest, lock) of a CustomVoice preset speaker with the cast file's optional instruct."""
    assert entry.preset is not None
    if "preset" not in engine.info().capabilities:
        raise CastFileError(f"{entry.where('preset')}: the {engine.info().name} engine has no preset speakers. "
                            "Pin a lock or a description instead, or render with --engine qwen3.")
    try:
        lock = engine.preset_lock(entry.preset, entry.instruct, settings.render.language, name=entry.name)
    except (ValueError, KeyError, VoiceLockError) as e:
        raise CastFileError(f"{entry.where('preset')}: {e}") from None
    path, digest = _save(lock, lock_root, entry.name)
    return path, digest, lock


def lock_embedding(engine, lock) -> np.ndarray | None:
    """A cast voice's speaker vector for distinctness: its x-vector, else the engine's embedding of its reference."""
    if getattr(lock, "x_vector", None) is not None:
        return np.asarray(lock.x_vector)
    if getattr(lock, "ref_audio", None) is not None:
        return engine.speaker_embedding(Audio(lock.ref_audio, lock.sample_rate))
    return None


# --------------------------------------------------------------------------------------------- extras


_POOL_VOICES: tuple[tuple[str, tuple[int, int], tuple[str, ...]], ...] = (
    ("male", (35, 50), ("clear", "even")),
    ("female", (30, 45), ("warm", "clear")),
    ("male", (55, 70), ("gravelly", "calm")),
    ("female", (20, 30), ("bright", "quick")),
    ("male", (20, 30), ("light", "brisk")),
    ("female", (55, 70), ("low", "steady")),
)


def pool_voice_name(slot: int) -> str:
    return f"EXTRAS POOL {slot + 1}"


def pool_profile(slot: int) -> CharacterProfile:
    """The profile of extras pool voice `slot` (0-based): alternating gender, varied ages."""
    gender, age, traits = _POOL_VOICES[slot % len(_POOL_VOICES)]
    fe = FieldEvidence(confidence=1.0, evidence=("extras pool",))
    return CharacterProfile(
        name=pool_voice_name(slot), gender=gender, age_range=age, traits=traits,  # type: ignore[arg-type]
        summary="A supporting voice for minor characters.",
        field_evidence={f: fe for f in ("gender", "age_range", "traits", "summary")}, analyzer="extras-pool",
    )


def is_extra(evidence: Evidence, entry: CastEntry, max_lines: int) -> bool:
    if entry.extra is not None:
        return entry.extra
    if evidence.name == NARRATOR:
        return False  # the narrator's voice is its own
    return evidence.line_count <= max_lines and not entry.pins_voice


def assign_extras(evidences: Mapping[str, Evidence] | Iterable[Evidence], castfile: CastFile | None, settings,
                  profiles: Mapping[str, CharacterProfile] | None = None) -> dict[str, int]:
    """{extra character: pool slot}. Extras are characters with at most `max_lines` lines and nothing pinned (or
    `extra = true`). Deterministic: round-robin in script order (the order of `evidences`), so consecutive minor
    characters differ; with `profiles`, a male/female extra cycles through the pool voices of that gender."""
    castfile = castfile or EMPTY_CAST
    pool = castfile.extras_pool(settings)
    if pool <= 0:
        return {}
    max_lines = castfile.extras_max_lines(settings)
    items = list(evidences.values()) if isinstance(evidences, Mapping) else list(evidences)
    extras = [e.name for e in items if is_extra(e, castfile.entry(e.name), max_lines)]
    slots_by_gender = {g: [s for s in range(pool) if pool_profile(s).gender == g] for g in ("male", "female")}
    turn: dict[str, int] = {}
    out = {}
    for name in extras:
        gender = profiles[name].gender if profiles and name in profiles else "unknown"
        slots = slots_by_gender.get(gender) or list(range(pool))
        group = gender if gender in slots_by_gender and slots_by_gender[gender] else "any"
        i = turn.get(group, 0)
        out[name] = slots[i % len(slots)]
        turn[group] = i + 1
    return out


def casting_order(evidences: Mapping[str, Evidence], extras: Mapping[str, int]) -> list[str]:
    """Main-cast characters, most lines first (ties in script order): later, minor voices are picked to differ
    from the leads."""
    names = list(evidences)
    return sorted((n for n in names if n not in extras), key=lambda n: (-evidences[n].line_count, names.index(n)))


def extra_result(pool: CastResult, name: str, profile: CharacterProfile, evidence: Evidence, castfile: CastFile,
                 settings) -> CastResult:
    """An extra's result: the pool voice `pool` under the extra's own name and profile, saying why it shares it."""
    n = evidence.line_count
    why = ("extra = true in the cast file" if castfile.entry(name).extra else
           f"{n} line{'s' if n != 1 else ''} (extras have at most {castfile.extras_max_lines(settings)})")
    return replace(pool, name=name, profile=profile, source="extra", extra_voice=pool.name, variants=(),
                   reason=f"extra, {why}: shares {pool.name} (its pick: {pool.reason})")


# --------------------------------------------------------------------------------------------- delivery variants


def script_delivery_counts(screenplay, settings) -> dict[str, dict[str, int]]:
    """{character: {delivery class: lines}} of the whole script (pipeline.direction.delivery_counts): the
    `deliveries` of `cast_characters`."""
    from .direction import delivery_counts

    return delivery_counts([d for _, d in screenplay.dialogues()], beat=settings.pauses.beat)


def variants_skip_reason(source: str) -> str:
    return {"preset": "a CustomVoice preset hears the line's instruct itself",
            "lock": "the voice is a lock pinned by the cast file (a variant is designed from a designed voice)"}.get(
        source, f"{source} voices have no variants")


# --------------------------------------------------------------------------------------------- the casting loop


@dataclass(frozen=True)
class Pick:
    index: int
    reason: str
    embedding: np.ndarray | None  # the chosen voice's speaker vector (None when it has none)


@dataclass(frozen=True)
class CastingSteps:
    """The steps of the casting loop that do the work, as plain functions. `direct_steps` calls the functions of
    this module; the cast flow (flows/cast.py) passes cached Prefect-task wrappers with the same signatures."""

    analyze: Callable[[str, Evidence, Mapping[str, Any] | None], CharacterProfile]  # (name, evidence, overrides)
    design: Callable[[str, str, list[int]], list[Audition]]  # (name, description, seeds) -> auditions
    pick: Callable[[str, Sequence[Audition], Mapping[str, np.ndarray], int | None], Pick]  # (…, cast, pinned)
    lock: Callable[[str, Audition], tuple[str, str]]  # (name, chosen audition) -> (lock path, digest)
    pinned: Callable[[str, CharacterProfile, CastEntry], tuple[CastResult, np.ndarray | None]]  # lock/.vox/preset
    release: Callable[[], None]  # free the design model
    # (name, delivery, lines, pinned take, description, neutral embedding, neutral lock digest) -> variant;
    # None: this loop makes no delivery variants
    variant: Callable[[str, str, int, int | None, str, np.ndarray | None, str], VariantResult] | None = None


def direct_steps(engine, settings, out_dir: str | Path, lock_root: str | Path, *, analyzer: Analyzer | None = None,
                 release: bool = True) -> CastingSteps:
    """The casting steps on `engine`, uncached: auditions under `out_dir`, locks under `lock_root`."""
    analyzer = analyzer or make_analyzer(settings)

    def design(name: str, description: str, seeds: list[int]) -> list[Audition]:
        return audition(engine, description, settings.casting.auditions, seeds, settings.casting.sample_text,
                        out_dir, name, settings.render.language)

    def pick_one(name: str, auditions: Sequence[Audition], cast: Mapping[str, np.ndarray], pinned: int | None):
        return Pick(*pick_audition(engine, auditions, cast, pinned))

    def lock(name: str, chosen: Audition) -> tuple[str, str]:
        path, digest = lock_character(engine, chosen, settings, lock_root, name=name)
        return str(path), digest

    def variant(name, delivery, lines, pinned, description, neutral, neutral_digest) -> VariantResult:
        return cast_variant(engine, name, delivery, lines, pinned, description, neutral, neutral_digest, settings,
                            out_dir, lock_root)

    return CastingSteps(
        analyze=lambda name, evidence, overrides: analyze_character(evidence, analyzer, overrides),
        design=design, pick=pick_one, lock=lock, variant=variant,
        pinned=lambda name, profile, entry: pinned_character(engine, profile, settings, entry, lock_root),
        release=engine.release_design if release else lambda: None,
    )


def pinned_character(engine, profile: CharacterProfile, settings, entry: CastEntry, lock_root
                     ) -> tuple[CastResult, np.ndarray | None]:
    """A character whose voice the cast file pins: its lock or .vox, else its preset speaker."""
    if entry.lock is not None:
        path, digest, lock = pinned_lock(entry, settings, lock_root)
        result = CastResult(name=profile.name, profile=profile, description=lock.description, auditions=(),
                            chosen=None, reason=f"lock {entry.lock} pinned by cast file", lock_path=str(path),
                            lock_digest=digest, source="lock")
        return result, lock_embedding(engine, lock)
    path, digest, lock = preset_character(engine, entry, settings, lock_root)
    how = f"preset speaker {entry.preset!r}" + (f" with instruct {entry.instruct!r}" if entry.instruct else "")
    result = CastResult(name=profile.name, profile=profile, description=how, auditions=(), chosen=None,
                        reason=f"{how} pinned by cast file", lock_path=str(path), lock_digest=digest,
                        source="preset")
    return result, lock_embedding(engine, lock)


# --------------------------------------------------------------------------------------------- the narrator


def needs_narrator(characters: Iterable[str], settings) -> bool:
    """True when the narrator is one more entry of the cast: narration is on and no script character is it."""
    return settings.narration.mode != "none" and NARRATOR not in set(characters)


def narrator_profile(castfile: CastFile | None = None) -> CharacterProfile:
    """The narrator's profile: a calm storyteller, with the cast file's [narrator] profile keys on top."""
    fe = FieldEvidence(confidence=1.0, evidence=("narrator",))
    profile = CharacterProfile(
        name=NARRATOR, gender="unknown", age_range=(35, 55), traits=("calm", "clear"),
        summary="The narrator: reads the scene headings and the action.",
        field_evidence={f: fe for f in ("age_range", "traits", "summary")}, analyzer="narrator",
    )
    return apply_overrides(profile, (castfile or EMPTY_CAST).entry(NARRATOR).overrides())


def cast_entry(castfile: CastFile | None, name: str, settings) -> CastEntry:
    """The cast-file entry a voice is cast with. The narrator's (the [narrator] table, or a script character named
    NARRATOR) gets `narration.description` unless it pins a description, a lock, a preset or profile keys (then
    `describe(profile)` applies as for anyone)."""
    entry = (castfile or EMPTY_CAST).entry(name)
    if name != NARRATOR or entry.description or entry.lock or entry.preset or entry.overrides():
        return entry
    return replace(entry, description=settings.narration.description)


def cast_characters(evidences: Mapping[str, Evidence], settings, castfile: CastFile | None,
                    steps: CastingSteps, deliveries: Mapping[str, Mapping[str, int]] | None = None
                    ) -> dict[str, CastResult]:
    """Cast every character of `evidences` (see the module docstring for the order); results in script order.
    `deliveries`: {character: {delivery class: lines}} (`script_delivery_counts`); None or {}: no variants."""
    castfile = castfile or EMPTY_CAST
    for pinned_entry in castfile.characters.values():
        check_variant_pins(pinned_entry, settings.delivery.auditions)  # a bad pin fails before any engine call
    profiles = {name: steps.analyze(name, ev, castfile.entry(name).overrides()) for name, ev in evidences.items()}
    extras = assign_extras(evidences, castfile, settings, profiles)
    results: dict[str, CastResult] = {}
    embeddings: dict[str, np.ndarray] = {}

    def keep(name: str, result: CastResult, embedding: np.ndarray | None) -> CastResult:
        if embedding is not None:
            embeddings[name] = embedding
        return result

    def designed(name: str, profile: CharacterProfile, entry: CastEntry | None) -> CastResult:
        if entry is not None:
            check_audition_pin(entry, settings.casting.auditions)  # a bad pin fails before any engine call
        description = character_description(profile, entry)
        auditions = steps.design(name, description, audition_seeds(profile.name, settings, entry))
        chosen = steps.pick(name, auditions, dict(embeddings), entry.audition if entry is not None else None)
        path, digest = steps.lock(name, auditions[chosen.index])
        result = CastResult(name=profile.name, profile=profile, description=description, auditions=tuple(auditions),
                            chosen=chosen.index, reason=chosen.reason, lock_path=path, lock_digest=digest)
        return keep(name, result, chosen.embedding)

    def with_variants(name: str, result: CastResult, entry: CastEntry) -> CastResult:
        wanted = wanted_variants((deliveries or {}).get(name, {}), settings, entry)
        if not wanted or steps.variant is None:
            return result
        if result.source != "designed":
            return replace(result, variants=skipped_variants(wanted, variants_skip_reason(result.source)))
        return replace(result, variants=tuple(
            steps.variant(name, delivery, n, pinned, result.description, embeddings.get(name), result.lock_digest)
            for delivery, n, pinned in wanted))

    def main_cast(name: str, profile: CharacterProfile) -> CastResult:
        entry = cast_entry(castfile, name, settings)
        if entry.lock is not None or entry.preset is not None:
            return with_variants(name, keep(name, *steps.pinned(name, profile, entry)), entry)
        return with_variants(name, designed(name, profile, entry), entry)

    for name in casting_order(evidences, extras):
        results[name] = main_cast(name, profiles[name])
    pool = {slot: designed(pool_voice_name(slot), pool_profile(slot), None) for slot in sorted(set(extras.values()))}
    for name, slot in extras.items():
        results[name] = extra_result(pool[slot], name, profiles[name], evidences[name], castfile, settings)
    names = list(evidences)
    if needs_narrator(evidences, settings):  # one more entry, cast last (see the module docstring)
        results[NARRATOR] = main_cast(NARRATOR, narrator_profile(castfile))
        names.append(NARRATOR)
    steps.release()
    return {name: results[name] for name in names}


def cast_script(screenplay, engine, settings, castfile: CastFile | None = None, out_dir: str | Path = "auditions",
                lock_root: str | Path | None = None, *, analyzer: Analyzer | None = None,
                evidences: Mapping[str, Evidence] | None = None, release: bool = True) -> dict[str, CastResult]:
    """`cast_characters` on `engine` without a cache (benches, tests, scripts): every speaking character of
    `screenplay`. `lock_root` defaults to `<home>/locks`; the design model is released at the end if `release`."""
    if evidences is None:
        from .evidence import collect_evidence

        evidences = collect_evidence(screenplay)
    if lock_root is None:
        from .config import home_dir

        lock_root = home_dir() / "locks"
    steps = direct_steps(engine, settings, out_dir, lock_root, analyzer=analyzer, release=release)
    deliveries = script_delivery_counts(screenplay, settings) if screenplay is not None else None
    return cast_characters(evidences, settings, castfile, steps, deliveries)
