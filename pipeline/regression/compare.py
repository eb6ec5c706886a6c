"""Tolerant comparison of a render's fingerprints with the goldens: per line, scene and speaker verdicts."""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from ..config import RegressionSettings
from ..errors import RegressionError
from .golden import Golden, LineFingerprint
from .measure import DB_FLOOR, AudioMeasures

SPECTRAL_RANGE_DB = 60.0  # spectral comparison ignores bands this far below the loudest band

Status = Literal["same", "within", "changed", "missing", "new"]
FAILING: frozenset[str] = frozenset({"changed", "missing", "new"})


# ------------------------------------------------------------------------------------------------- comparison


class RegressionFailed(RegressionError):
    """The render differs from the goldens beyond tolerance. Carries the report (JSON) for callers."""

    exit_code = 1

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class LineVerdict:
    id: str
    scene: int
    character: str
    status: Status
    text: str
    golden_text: str | None = None
    key_changed: bool = False
    exact: bool = False  # sample digests equal
    deltas: dict[str, float] = field(default_factory=dict)  # measure -> current minus golden (speaker: cosine)
    reasons: tuple[str, ...] = ()  # why it failed (changed/missing/new), or what moved within tolerance

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass(frozen=True)
class SceneVerdict:
    index: int
    heading: str
    status: Status
    exact: bool = False
    deltas: dict[str, float] = field(default_factory=dict)  # duration, loudness, spectral, max_shift (timing)
    reasons: tuple[str, ...] = ()
    lines: dict[str, int] = field(default_factory=dict)  # status -> count of this scene's lines

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass(frozen=True)
class SpeakerVerdict:
    character: str
    similarity: float  # cosine of the mean x-vectors, golden vs current
    ok: bool


@dataclass(frozen=True)
class RegressionReport:
    script: str
    lines: tuple[LineVerdict, ...]
    scenes: tuple[SceneVerdict, ...]
    speakers: tuple[SpeakerVerdict, ...]
    settings: dict[str, Any]
    notes: tuple[str, ...] = ()  # context for a reader, e.g. the golden was made with another engine or model

    @property
    def ok(self) -> bool:
        return not any(x.failed for x in (*self.lines, *self.scenes)) and all(s.ok for s in self.speakers)

    @property
    def exact(self) -> bool:
        """Every line and scene bit-identical to the golden (expected on the machine that wrote it)."""
        return all(x.exact for x in (*self.lines, *self.scenes))

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("same", "within", "changed", "missing", "new")}
        for v in self.lines:
            out[v.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "ok": self.ok,
            "exact": self.exact,
            "counts": self.counts(),
            "exact_lines": sum(v.exact for v in self.lines),
            "settings": self.settings,
            "notes": list(self.notes),
            "lines": [asdict(v) for v in self.lines],
            "scenes": [asdict(v) for v in self.scenes],
            "speakers": [asdict(v) for v in self.speakers],
        }


def compare(golden: Golden, current: Golden, settings: RegressionSettings | None = None) -> RegressionReport:
    """Compare a render's fingerprints with the golden ones under the tolerances in `settings`."""
    settings = settings or RegressionSettings()
    pairs = _align_lines(golden.lines, current.lines)
    verdicts = tuple(_line_verdict(g, c, settings) for g, c in pairs)
    scenes = _scene_verdicts(golden, current, verdicts, settings)
    speakers = _speaker_verdicts(pairs, settings)
    return RegressionReport(golden.script, verdicts, scenes, speakers, settings.model_dump(), _notes(golden, current))


def _notes(golden: Golden, current: Golden) -> tuple[str, ...]:
    notes = []
    keys = sorted(k for k in set(golden.engine) | set(current.engine) if golden.engine.get(k) != current.engine.get(k))
    if keys:
        show = lambda e: ", ".join(f"{k}={e.get(k)!r}" for k in keys)  # noqa: E731
        notes.append(f"The golden was made with another engine or model ({show(golden.engine)}; this render: "
                     f"{show(current.engine)}). Rerun with the golden's --engine/--models, or --update.")
    if golden.script != current.script:
        notes.append(f"golden is for script {golden.script!r}, this render is {current.script!r}.")
    return tuple(notes)


def _align_lines(golden: Sequence[LineFingerprint], current: Sequence[LineFingerprint]):
    """Pairs (golden | None, current | None) in script order. Within one (scene, character) the two sequences are
    aligned by text (difflib), so an edit pairs the edited line and a deletion leaves exactly one golden unpaired."""
    groups: dict[tuple[int, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for g in golden:
        groups[(g.scene, g.character)][0].append(g)
    for c in current:
        groups[(c.scene, c.character)][1].append(c)
    pairs = []
    for gs, cs in groups.values():
        matcher = difflib.SequenceMatcher(a=[g.text for g in gs], b=[c.text for c in cs], autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            a, b = gs[i1:i2], cs[j1:j2]
            n = min(len(a), len(b)) if op in ("equal", "replace") else 0
            pairs += list(zip(a[:n], b[:n]))
            pairs += [(g, None) for g in a[n:]] + [(None, c) for c in b[n:]]
    def order(pair):
        fp = pair[1] or pair[0]  # a missing line sorts at its golden place
        return fp.scene, fp.start, fp.ordinal

    return sorted(pairs, key=order)


def _line_verdict(g: LineFingerprint | None, c: LineFingerprint | None, s: RegressionSettings) -> LineVerdict:
    if c is None:
        return LineVerdict(g.id, g.scene, g.character, "missing", text=g.text, golden_text=g.text,
                           reasons=(f"missing: the golden has {g.character}'s line {g.text!r}",))
    if g is None:
        return LineVerdict(c.id, c.scene, c.character, "new", text=c.text,
                           reasons=(f"new: {c.character}'s line {c.text!r} is not in the golden",))
    deltas, fails, moved = _measure_deltas(g.audio, c.audio, s)
    deltas["timing"] = round(c.gap - g.gap, 4)
    _judge(deltas["timing"], s.timing_tol_s, "timing", "s", fails, moved, what="pause before the line")
    if g.xvector is not None and c.xvector is not None:
        deltas["speaker"] = round(_cosine(g.xvector, c.xvector), 4)
        if deltas["speaker"] < s.speaker_min_similarity:
            fails.append(f"speaker similarity {deltas['speaker']:.3f} < {s.speaker_min_similarity}")
    if g.text != c.text:
        fails.insert(0, f"text changed: {g.text!r} -> {c.text!r}")
    exact = g.audio.digest == c.audio.digest
    if s.require_exact and not exact:
        fails.append("samples differ (require_exact)")
    status: Status = "changed" if fails else ("same" if exact and deltas["timing"] == 0 else "within")
    return LineVerdict(c.id, c.scene, c.character, status, text=c.text, golden_text=g.text,
                       key_changed=g.key != c.key, exact=exact, deltas=deltas, reasons=tuple(fails or moved))


def _measure_deltas(g: AudioMeasures, c: AudioMeasures, s: RegressionSettings):
    deltas = {
        "duration": round(c.duration - g.duration, 4),
        "loudness": round(c.loudness - g.loudness, 2),
        "rms": round(c.rms_db - g.rms_db, 2),
        "peak": round(c.peak_db - g.peak_db, 2),
        "spectral": round(_max_abs_diff(g.mel_db, c.mel_db), 2),
    }
    fails: list[str] = []
    moved: list[str] = []
    _judge(deltas["duration"], s.duration_tol_s, "duration", "s", fails, moved)
    _judge(deltas["loudness"], s.loudness_tol_db, "loudness", "LU", fails, moved)
    _judge(deltas["rms"], s.loudness_tol_db, "RMS", "dB", fails, moved)
    _judge(deltas["spectral"], s.spectral_tol_db, "spectrum (max band)", "dB", fails, moved)
    return deltas, fails, moved


def _judge(delta: float, tol: float, name: str, unit: str, fails: list, moved: list, what: str = "") -> None:
    label = f"{name}{f' ({what})' if what else ''} {delta:+.3f} {unit}"
    if abs(delta) > tol:
        fails.append(f"{label} (tolerance ±{tol})")
    elif delta != 0:
        moved.append(f"{label} (within ±{tol})")


def _max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    """Largest per-band difference in dB. Bands more than SPECTRAL_RANGE_DB below the loudest band of either clip
    count as silent and equal: the log of near-silence swings wildly with float noise from another machine."""
    if len(a) != len(b):
        return -DB_FLOOR  # different band layouts cannot be compared: report the largest possible change
    if not len(a):
        return 0.0
    floor = max(max(a), max(b)) - SPECTRAL_RANGE_DB
    return float(np.max(np.abs(np.maximum(a, floor) - np.maximum(b, floor))))


def _cosine(a: Iterable[float], b: Iterable[float]) -> float:
    a, b = np.asarray(tuple(a), dtype=np.float64), np.asarray(tuple(b), dtype=np.float64)
    if a.shape != b.shape:
        return 0.0
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def _scene_verdicts(golden: Golden, current: Golden, lines: Sequence[LineVerdict], s: RegressionSettings):
    gs = {x.index: x for x in golden.scenes}
    cs = {x.index: x for x in current.scenes}
    out = []
    for index in sorted(set(gs) | set(cs)):
        g, c = gs.get(index), cs.get(index)
        counts: dict[str, int] = defaultdict(int)
        for v in lines:
            if v.scene == index:
                counts[v.status] += 1
        heading = (c or g).heading
        if g is None or c is None:
            status: Status = "new" if g is None else "missing"
            out.append(SceneVerdict(index, heading, status, reasons=(f"scene {index} is {status}",), lines=dict(counts)))
            continue
        deltas: dict[str, float] = {}
        fails: list[str] = []
        moved: list[str] = []
        if g.audio is not None and c.audio is not None:
            deltas, fails, moved = _measure_deltas(g.audio, c.audio, s)
        elif (g.audio is None) != (c.audio is None):
            fails.append("scene audio file " + ("missing" if c.audio is None else "new"))
        deltas["max_shift"] = _max_shift(g.timings, c.timings)
        if g.heading != c.heading:
            fails.append(f"heading changed: {g.heading!r} -> {c.heading!r}")
        failed_lines = sum(counts[k] for k in FAILING)
        if failed_lines:
            fails.append(f"{failed_lines} line(s) changed, missing or new")
        exact = g.audio is not None and c.audio is not None and g.audio.digest == c.audio.digest
        status = "changed" if fails else ("same" if exact else "within")
        out.append(SceneVerdict(index, heading, status, exact, deltas, tuple(fails or moved), dict(counts)))
    return tuple(out)


def _max_shift(g: Sequence[tuple[str, float, float]], c: Sequence[tuple[str, float, float]]) -> float:
    """The largest move of a line's start between golden and current, over lines present in both."""
    starts = {i: start for i, start, _ in g}
    shifts = [abs(start - starts[i]) for i, start, _ in c if i in starts]
    return round(max(shifts, default=0.0), 4)


def _speaker_verdicts(pairs, s: RegressionSettings) -> tuple[SpeakerVerdict, ...]:
    """Per character: cosine between the mean unit x-vectors of its golden and current lines."""
    vecs: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for g, c in pairs:
        for side, fp in ((0, g), (1, c)):
            if fp is not None and fp.xvector is not None:
                v = np.asarray(fp.xvector, dtype=np.float64)
                n = np.linalg.norm(v)
                if n > 0:
                    vecs[fp.character][side].append(v / n)
    out = []
    for character in sorted(vecs):
        a, b = vecs[character]
        if a and b and len(a[0]) == len(b[0]):
            sim = round(_cosine(np.mean(a, axis=0), np.mean(b, axis=0)), 4)
            out.append(SpeakerVerdict(character, sim, sim >= s.speaker_min_similarity))
    return tuple(out)
