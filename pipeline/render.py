"""Line planning and rendering: every spoken part becomes a content-keyed LineJob; only missing keys are rendered.

A line's content key covers exactly what determines its audio — speech text, instruct, the digest of the voice lock
actually used (the character's neutral lock, or its variant for the line's delivery: docs/delivery.md), whether the
instruct is prefixed to a clone prompt (`[delivery] mode`), the sampling settings, the engine and model ids, the
render version, and which repeat of an identical line it is — so editing one line changes exactly one key, adding a
variant changes exactly the keys of the lines that use it, and a rerun renders only keys the LineStore does not hold.

A clone line samples from its own random stream whatever its batch neighbours (pipeline.engines.qwen3_session), so
a line without a delivery renders bit-identically whatever `[delivery] mode` does to the lines around it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

from .direction import direct_dialogue
from .engines.base import RenderJob, RenderOutcome, speech_allowance_seconds, spoken_words
from .engines.session import SessionRow, SessionStats, ShouldStop, never, open_session
from .keys import content_key, seed_from_key
from .screenplay import Dialogue, Scene, Screenplay

if TYPE_CHECKING:
    from .config import Settings
    from .lock import VoiceLock
    from .store import LineStore

RENDER_VERSION = "1"


@dataclass(frozen=True)
class LineJob:
    """One spoken part of one dialogue block, with everything needed to render and place it."""

    key: str
    scene_index: int  # index into Screenplay.scenes (0-based)
    heading: str | None
    character: str
    voice_digest: str | None  # digest of the VoiceLock this line renders with (neutral or delivery variant)
    text: str  # speech text (what is spoken)
    instruct: str | None
    seed: int
    dual_group: int | None = None  # dual-dialogue pair number within the scene
    dual_side: int = 0
    pause_before: float | None = None  # seconds, from (beat)/(pause)
    extension: str | None = None  # V.O., O.S. …
    source_line: int = 0
    effects: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    kind: str = "dialogue"  # dialogue, or what the narrator reads: heading | action | transition | centered
    piece: int = 0  # a long line split into pieces (pipeline.chunks): this job's place …
    pieces: int = 1  # … among the line's pieces; each piece is its own job, joined again in the scene mix
    cue_text: str | None = None  # the whole line as written, when `text` differs (a piece, or a lexicon respelling)
    delivery: str | None = None  # delivery class of the instruct (pipeline.direction), e.g. "shouting"
    variant: bool = False  # True when voice_digest is the character's variant voice for `delivery`

    @property
    def is_narration(self) -> bool:
        return self.kind != "dialogue"

    @property
    def line_text(self) -> str:
        """The script line this job speaks (all of it), as written: what cues and subtitles show."""
        return self.cue_text if self.cue_text is not None else self.text

    def to_json(self) -> dict:
        return {
            "key": self.key, "scene_index": self.scene_index, "heading": self.heading, "character": self.character,
            "voice_digest": self.voice_digest, "text": self.text, "instruct": self.instruct, "seed": self.seed,
            "dual_group": self.dual_group, "dual_side": self.dual_side, "pause_before": self.pause_before,
            "extension": self.extension, "source_line": self.source_line, "effects": list(self.effects),
            "notes": list(self.notes), "kind": self.kind, "piece": self.piece, "pieces": self.pieces,
            "cue_text": self.cue_text, "delivery": self.delivery, "variant": self.variant,
        }

    @classmethod
    def from_json(cls, data: dict) -> "LineJob":
        return cls(**{**data, "effects": tuple(data.get("effects", ())), "notes": tuple(data.get("notes", ()))})


@dataclass(frozen=True)
class LineFailure:
    key: str
    character: str
    scene_index: int
    source_line: int
    text: str
    reason: str

    def to_json(self) -> dict:
        return {"key": self.key, "character": self.character, "scene_index": self.scene_index,
                "source_line": self.source_line, "text": self.text, "reason": self.reason}


@dataclass(frozen=True)
class RenderSummary:
    """What `render_missing` did: keys rendered now, keys already in the store, per-line failures, and keys left
    unrendered because it was told to stop (`should_stop`)."""

    rendered: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    failed: tuple[LineFailure, ...] = ()
    engine_calls: int = 0  # batched engine steps (engine calls for engines without a step-wise session)
    seconds: float = 0.0
    engine: SessionStats | None = None  # the session's batching figures
    stopped: tuple[str, ...] = ()  # not rendered: the run was told to stop first (not failures; a rerun renders them)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        return {"rendered": list(self.rendered), "reused": list(self.reused),
                "failed": [f.to_json() for f in self.failed], "engine_calls": self.engine_calls,
                "seconds": round(self.seconds, 3), "engine": (self.engine or SessionStats()).to_json(),
                "stopped": list(self.stopped)}


def sampling_payload(settings: "Settings") -> dict:
    """The settings that change a line's audio (and therefore its key)."""
    r = settings.render
    return {"temperature": r.temperature, "top_k": r.top_k, "top_p": r.top_p,
            "repetition_penalty": r.repetition_penalty, "language": r.language, "max_retakes": r.max_retakes,
            "seconds_per_word": r.seconds_per_word, "min_seconds": r.min_seconds, "silence_rms": r.silence_rms}


def line_key(text: str, instruct: str | None, voice_digest: str | None, sampling: dict, engine_desc: dict,
             repeat: int = 0, prefixed: bool = False) -> str:
    """The content key of one line (see the module docstring). `prefixed`: the instruct is prefixed to a clone
    prompt (delivery mode instruct/both); only then does the key carry it, so other keys are unchanged."""
    payload = {"text": text, "instruct": instruct, "voice": voice_digest, "sampling": sampling,
               "engine": engine_desc, "repeat": repeat}
    if prefixed and instruct:
        payload["delivery"] = "instruct-prefix"
    return content_key("line", RENDER_VERSION, payload)


def line_voice(character: str, delivery: str | None, voices: Mapping[str, str | None],
               variants: Mapping[str, Mapping[str, str]] | None) -> tuple[str | None, bool]:
    """(digest of the voice a line renders with, is it a variant): the character's variant for the line's delivery
    class when it has one, else its neutral voice."""
    variant = (variants or {}).get(character, {}).get(delivery) if delivery else None
    return (variant, True) if variant else (voices.get(character), False)


def dual_pairs(dialogues: Sequence[Dialogue]) -> dict[int, tuple[int, int]]:
    """Dialogue index → (pair number, side). Accepts both parser conventions: both speeches of a pair marked dual
    (a run of marked speeches pairs up two by two), or only the `^` speech marked (it pairs with the one before)."""
    pairs: dict[int, tuple[int, int]] = {}
    group = 0
    i = 0
    while i < len(dialogues):
        if not dialogues[i].dual:
            i += 1
            continue
        run_end = i
        while run_end + 1 < len(dialogues) and dialogues[run_end + 1].dual:
            run_end += 1
        run = list(range(i, run_end + 1))
        if len(run) == 1 and i > 0 and (i - 1) not in pairs:
            run = [i - 1, i]
        for k in range(0, len(run) - 1, 2):
            group += 1
            pairs[run[k]], pairs[run[k + 1]] = (group, 0), (group, 1)
        i = run_end + 1
    return pairs


def _speech_text(text: str) -> str:
    from .fountain import speech_text  # the parser owns emphasis/notes removal

    return speech_text(text)


CLAIM_MAX = 512  # lines claimed at once (one open file each); bigger chunks render unclaimed
CHARS_PER_WORD_LIMIT = 40  # a "word" longer than this counts as several (URLs, runs of symbols, missing spaces)


def job_words(text: str) -> int:
    """Words in a line's text for its limits: whitespace-separated, long runs counted per 40 characters."""
    return sum(max(1, -(-len(w) // CHARS_PER_WORD_LIMIT)) for w in text.split())


def max_job_seconds(text: str, settings: "Settings") -> float:
    """The most audio one line job may produce: `seconds_per_word` per spoken word, at least `min_seconds`."""
    r = settings.render
    return speech_allowance_seconds(text, r.seconds_per_word, r.min_seconds)


def bound_text(text: str, settings: "Settings", where: str) -> tuple[str, str | None]:
    """(text, note): the text of one line job within `render.max_words_per_line` words. Beyond it the text is cut
    at the limit with a note saying so (`long_lines = "truncate"`), or a ScriptError names the line
    (`long_lines = "refuse"`). Works on whatever the planner hands it, split into pieces or not."""
    from .errors import ScriptError

    limit = settings.render.max_words_per_line
    words = job_words(text)
    if words <= limit:
        return text, None
    if settings.render.long_lines == "refuse":
        raise ScriptError(f"{where}: one line of {words} words is longer than render.max_words_per_line = {limit}. "
                          "Split the speech, raise the limit in a --settings file, or set "
                          "render.long_lines = \"truncate\".")
    kept: list[str] = []
    budget = limit
    for w in text.split():
        cost = max(1, -(-len(w) // CHARS_PER_WORD_LIMIT))
        if cost > budget:
            if budget > 0:
                kept.append(w[: budget * CHARS_PER_WORD_LIMIT])
            break
        kept.append(w)
        budget -= cost
    return " ".join(kept), (f"truncated: {words} words, only the first {limit} are spoken "
                            "(render.max_words_per_line)")


def offscreen_effects(extension: str | None, effects: tuple[str, ...], settings: "Settings") -> tuple[str, ...]:
    """`effects` plus "offscreen" for an O.S./O.C. line (and V.O. when `offscreen.voice_over = "offscreen"`), unless
    a device treatment (radio, phone …) already places the voice."""
    if not extension or effects:
        return effects
    ext = " ".join(extension.upper().split())
    o = settings.offscreen
    kinds = {" ".join(e.upper().split()) for e in o.extensions}
    if ext in kinds or (o.voice_over == "offscreen" and ext.replace(".", "") in ("VO", "V O")):
        return (*effects, "offscreen")
    return effects


def speech_pieces(text: str, settings: "Settings") -> list[str]:
    """`text` in pieces of at most `render.max_chunk_seconds` by estimate (one piece when it fits)."""
    from .chunks import split_speech

    r = settings.render
    return split_speech(text, r.max_chunk_seconds, r.min_chunk_seconds, r.speaking_rate) or [text]


class _Planner:
    """Builds the jobs of one run: repeat counters (an identical line gets its own key and take), the lexicon and
    the splitting of long lines, shared by dialogue and narration."""

    def __init__(self, voices: Mapping[str, str | None], engine_desc: dict, settings: "Settings", repeats: dict,
                 lexicon=None, variants: Mapping[str, Mapping[str, str]] | None = None):
        self.voices, self.engine_desc, self.settings, self.repeats = voices, engine_desc, settings, repeats
        self.sampling = sampling_payload(settings)
        self.lexicon = lexicon
        self.variants = variants if settings.delivery.variants else None

    def jobs(self, written: str, character: str, instruct: str | None, ident_tag: tuple, **fields) -> list[LineJob]:
        """The job(s) of one script line: respelled, split when long, each piece keyed like any line."""
        said = self.lexicon.apply(written) if self.lexicon else written
        said, cut = bound_text(said, self.settings, f"line {fields.get('source_line', 0)} ({character})")
        pieces = speech_pieces(said, self.settings)  # the capped line, in pieces a model renders well
        shown = bound_text(written, self.settings, "")[0] if cut else written  # cues show what is spoken
        voice, is_variant = line_voice(character, fields.get("delivery"), self.voices, self.variants)
        out: list[LineJob] = []
        for n, piece in enumerate(pieces):
            ident = (*ident_tag, voice, character if voice is None else "", piece, instruct)
            repeat = self.repeats.get(ident, 0)
            self.repeats[ident] = repeat + 1
            key = line_key(piece, instruct, voice, self.sampling, self.engine_desc, repeat,
                           prefixed=self.settings.delivery.instruct)
            extra = dict(fields)
            if cut and n == 0:  # said once, on the line's first piece
                extra["notes"] = (*extra.get("notes", ()), cut)
            if n:
                extra["pause_before"] = None  # a beat belongs before the line, not between its pieces
            out.append(LineJob(
                key=key, character=character, voice_digest=voice, text=piece, instruct=instruct,
                seed=seed_from_key(key), piece=n, pieces=len(pieces), variant=is_variant,
                cue_text=shown if (len(pieces) > 1 or piece != shown) else None, **extra))
        return out


def plan_scene_jobs(scene_index: int, scene: Scene, voices: Mapping[str, str | None], engine_desc: dict,
                    settings: "Settings", repeats: dict | None = None,
                    variants: Mapping[str, Mapping[str, str]] | None = None, *, lexicon=None,
                    names: Sequence[str] = ()) -> list[LineJob]:
    """The LineJobs of one scene, in script order: the narration of `settings.narration.mode` (pipeline.spoken)
    between the dialogue. `repeats` counts identical lines across calls so that a repeated line gets its own key
    (and take); `variants`: {character: {delivery class: digest}} of the variant voices made at cast time (used
    only when `[delivery]` mode has variants); `lexicon` respells words before keys are made; `names` are the
    script's characters (for reading names in capitals)."""
    from .spoken import NARRATOR, narration

    planner = _Planner(voices, engine_desc, settings, {} if repeats is None else repeats, lexicon, variants)
    items = narration(scene, settings.narration.mode, names)
    dialogues = scene.dialogues
    pairs = dual_pairs(dialogues)
    jobs: list[LineJob] = []

    def narrate(after: int) -> None:
        for item in (i for i in items if i.after == after):
            jobs.extend(planner.jobs(item.text, NARRATOR, None, ("narration",), scene_index=scene_index,
                                     heading=scene.heading, source_line=item.line, kind=item.kind))

    narrate(0)
    for di, d in enumerate(dialogues):
        group, side = pairs.get(di, (None, 0))
        directions = direct_dialogue(d, beat=settings.pauses.beat)
        for part, direction in zip(d.spoken, directions):
            text = _speech_text(part.text)
            if not text.strip():
                continue
            jobs.extend(planner.jobs(
                text, d.character, direction.instruct, (), scene_index=scene_index, heading=scene.heading,
                dual_group=group, dual_side=side, pause_before=direction.pause_before, extension=d.extension,
                source_line=part.line or d.line, effects=offscreen_effects(d.extension, direction.effects, settings),
                notes=direction.notes, delivery=direction.delivery))
        narrate(di + 1)
    return jobs


def plan_line_jobs(screenplay: Screenplay, voices: Mapping[str, str | None], engine_desc: dict,
                   settings: "Settings", variants: Mapping[str, Mapping[str, str]] | None = None,
                   lexicon=None) -> list[LineJob]:
    """One job per spoken part (line or lyric) of every dialogue and per narration line (split into pieces when
    long), in script order."""
    repeats: dict = {}
    names = screenplay.characters()
    jobs: list[LineJob] = []
    for i, scene in enumerate(screenplay.scenes):
        jobs.extend(plan_scene_jobs(i, scene, voices, engine_desc, settings, repeats, variants, lexicon=lexicon,
                                    names=names))
    return jobs


def _unique(jobs: Iterable[LineJob]) -> list[LineJob]:
    seen: dict[str, LineJob] = {}
    for j in jobs:
        seen.setdefault(j.key, j)
    return list(seen.values())


def render_missing(
    engine, store: "LineStore", jobs: Sequence[LineJob], locks: Mapping[str, "VoiceLock"], *, batch_size: int = 8,
    language: str = "en", on_line: Callable[[LineJob, str], None] | None = None, force: bool = False,
    settings: "Settings | None" = None, should_stop: ShouldStop = never,
) -> RenderSummary:
    """Render every job whose key the store lacks through ONE engine session (pipeline.engines.session) that keeps
    `batch_size` rows busy across voices and scenes; store each line as soon as it is done; never raises for one
    line.

    `locks` maps a voice digest (or a character name) to its VoiceLock. `on_line(job, status)` is called once per
    unique key with status "reused", "rendered" or "failed" (for progress bars). `force` renders every job again,
    replacing what the store holds. With `settings`, a take longer than `max_job_seconds` of its text fails.
    Lines are claimed in the store while they render (`LineStore.claim`): a line another render is writing is
    waited for and reused, not rendered twice. `should_stop()` (asked before each engine step) ends the run early:
    lines finished so far are stored, the rest are reported `stopped`, neither rendered nor failed.
    """
    started = time.perf_counter()
    unique = _unique(jobs)
    present = set() if force else {j.key for j in unique if store.has(j.key)}  # one look-up per line
    reused = [j for j in unique if j.key in present]
    todo = [j for j in unique if j.key not in present]
    for j in reused:
        if on_line:
            on_line(j, "reused")
    rendered: list[str] = []
    failed: list[LineFailure] = []

    def settle(job: LineJob, reason: str | None) -> None:
        if reason is None:
            rendered.append(job.key)
        else:
            failed.append(_failure(job, reason))
        if on_line:
            on_line(job, "rendered" if reason is None else "failed")

    rows: list[SessionRow] = []
    for j in todo:
        lock = (locks.get(j.voice_digest) if j.voice_digest else None) or locks.get(j.character)
        if lock is None:
            settle(j, f"no voice lock for {j.character} (voice {j.voice_digest or 'not cast'}); cast the script first")
            continue
        rows.append(SessionRow(lock, RenderJob(key=j.key, text=j.text, seed=j.seed, instruct=j.instruct,
                                               language=language)))
    by_key = {j.key: j for j in todo}
    waiting = {r.job.key for r in rows}

    def on_outcome(outcome: RenderOutcome) -> None:
        if outcome.key not in waiting:
            return
        waiting.discard(outcome.key)
        job = by_key[outcome.key]
        limit = max_job_seconds(job.text, settings) if settings is not None else None
        settle(job, _store_outcome(store, engine, job, outcome, limit))

    session = open_session(engine, batch_size)
    crash = None
    claim = store.claim(r.job.key for r in rows) if len(rows) <= CLAIM_MAX else contextlib.nullcontext()
    with claim:  # waits while another render writes any of these lines (different output folders, farm workers)
        for r in [r for r in rows if not force and store.has(r.job.key)]:  # stored by that render meanwhile
            waiting.discard(r.job.key)
            reused.append(by_key[r.job.key])
            if on_line:
                on_line(by_key[r.job.key], "reused")
        rows = [r for r in rows if r.job.key in waiting]
        if rows:
            try:
                session.run(rows, on_outcome, should_stop)
            except Exception as e:  # noqa: BLE001 — the session itself broke: its unfinished lines fail, named
                crash = f"engine error: {type(e).__name__}: {e}"
    unfinished = [r.job.key for r in rows if r.job.key in waiting]
    stopped = tuple(unfinished) if crash is None and unfinished and should_stop() else ()
    for key in [] if stopped else unfinished:
        settle(by_key[key], crash or "engine returned no outcome for this line")
    return RenderSummary(tuple(rendered), tuple(j.key for j in reused), tuple(failed), session.stats.steps,
                         time.perf_counter() - started, session.stats, stopped)


def plan_chunks(jobs: Sequence[LineJob], size: int) -> list[list[LineJob]]:
    """The lines to render, in script order, cut into chunks of `size` (one render task and engine session each):
    scenes complete in order and mix early, while each session still holds many lines to keep its rows busy."""
    unique = _unique(jobs)
    size = max(1, int(size))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def _store_outcome(store, engine, job: LineJob, out, limit: float | None = None) -> str | None:
    """Put a good outcome in the store; return the failure reason otherwise."""
    if out is None:
        return "engine returned no outcome for this line"
    if isinstance(out, str):
        return out
    if not out.ok:
        return out.error or "engine returned no audio"
    if limit is not None and out.audio.duration > limit:
        return (f"runaway take: {out.audio.duration:.1f} s of audio for {spoken_words(job.text)} words (limit "
                f"{limit:.1f} s from render.seconds_per_word / min_seconds); not stored")
    try:
        store.put(job.key, out.audio, {
            "tokens": out.tokens, "retakes": out.retakes, "seed": out.seed or job.seed,
            "engine": getattr(engine, "name", ""), "character": job.character, "text": job.text,
        })
    except OSError as e:  # WriteError from pipeline.files names the line's own path and the free space
        return f"could not write to the line store: {e}"
    return None


def _failure(job: LineJob, reason: str) -> LineFailure:
    return LineFailure(job.key, job.character, job.scene_index, job.source_line, job.text, reason)


def spoken_scenes(screenplay: Screenplay, narration_mode: str = "none") -> list[int]:
    """Indexes of scenes a render produces audio for: those with a dialogue block or, under `narration_mode`,
    anything the narrator reads."""
    from .spoken import narration

    names = screenplay.characters()
    return [i for i, s in enumerate(screenplay.scenes)
            if s.dialogues or (narration_mode != "none" and narration(s, narration_mode, names))]


def scene_label(screenplay: Screenplay, index: int) -> str:
    """The user-facing number of a scene: its `#n#` number if written, else its 1-based position among headed
    scenes."""
    scene = screenplay.scenes[index]
    if scene.number:
        return scene.number
    return str(_ordinal(screenplay, index))


def _ordinal(screenplay: Screenplay, index: int) -> int:
    headed = [i for i, s in enumerate(screenplay.scenes) if s.heading is not None or s.dialogues]
    return headed.index(index) + 1 if index in headed else 0  # the heading-less lead-in (narrated: "Fade in.")


def select_scenes(screenplay: Screenplay, spec: Sequence[str | int] | None, narration_mode: str = "none"
                  ) -> list[int]:
    """Resolve `--scenes 1,3` (1-based positions among headed scenes, or written scene numbers like "1A") to scene
    indexes; None/empty selects every scene with something spoken (`spoken_scenes`). Unknown numbers raise a
    ValueError naming them."""
    spoken = spoken_scenes(screenplay, narration_mode)
    if not spec:
        return spoken
    headed = [i for i, s in enumerate(screenplay.scenes) if s.heading is not None or s.dialogues]
    by_number = {s.number: i for i, s in enumerate(screenplay.scenes) if s.number}
    chosen: list[int] = []
    bad: list[str] = []
    for item in spec:
        token = str(item).strip()
        if not token:
            continue
        if token in by_number:
            idx = by_number[token]
        elif token == "0" and spoken and screenplay.scenes[spoken[0]].heading is None and spoken[0] not in headed:
            idx = spoken[0]  # the narrated lead-in before the first heading ("Fade in.")
        elif token.isdigit() and 1 <= int(token) <= len(headed):
            idx = headed[int(token) - 1]
        else:
            bad.append(token)
            continue
        if idx not in chosen:
            chosen.append(idx)
    if bad:
        raise ValueError(f"no scene {', '.join(bad)}: the script has {len(headed)} scenes "
                         f"(numbers {', '.join(scene_label(screenplay, i) for i in headed)})")
    return sorted(chosen)
