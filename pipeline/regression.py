"""Audio regression: fingerprints of a render's lines and scenes, goldens on disk, and a tolerant comparison.

A fingerprint is a handful of numbers per line and per scene (duration, RMS/peak/loudness, a 20-band mean log-mel
spectrum, the sha256 of the exact samples, optionally the speaker x-vector) — small enough to commit as JSON and
review like code. `compare` says per line whether the audio is the same (digest equal), changed within tolerance
(float noise from another machine), changed (which measure, by how much), missing or new.

A line's identity across renders is (scene index, character, n-th line of that character in the scene) — never its
content key, so an edited line is reported as "changed", not as "missing" plus "new". Inside one scene and character
the lines of golden and current are aligned by their text, so deleting one line reports exactly that line missing.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from . import loudness as ld
from .audio import Audio, read_audio
from .audio import mel_filterbank as _mel_filterbank
from .config import RegressionSettings
from .errors import RegressionError
from .files import atomic_write_text

FINGERPRINT_VERSION = 1
GOLDEN_FILE = "fingerprints.json"
UPDATE_HINT = "readthrough regress SCRIPT --update"
DB_FLOOR = -120.0  # silence is stored as this, not -inf: JSON has no infinities
N_MELS = 20
_N_FFT = 1024
_HOP = 256
_FMIN = 50.0
SPECTRAL_RANGE_DB = 60.0  # spectral comparison ignores bands this far below the loudest band
_LOUDNESS_MIN_S = 0.4  # one BS.1770 gating block; shorter clips are measured on a loop of themselves

Status = Literal["same", "within", "changed", "missing", "new"]
FAILING: frozenset[str] = frozenset({"changed", "missing", "new"})


# ----------------------------------------------------------------------------------------------- measurements


def _db(power: float) -> float:
    return round(max(DB_FLOOR, 10.0 * math.log10(power)) if power > 0 else DB_FLOOR, 2)


def mel_filterbank(sample_rate: int, n_fft: int = _N_FFT, n_mels: int = N_MELS, fmin: float = _FMIN) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft//2+1] from `fmin` to Nyquist (`pipeline.audio.mel_filterbank`)."""
    return _mel_filterbank(sample_rate, n_fft, n_mels, fmin)


def mean_log_mel(audio: Audio, n_mels: int = N_MELS) -> tuple[float, ...]:
    """dB of the mean mel-band power over the clip, per band: a compact, loudness-aware spectral summary.

    Power is averaged before the log so silent frames do not dominate. Frames are processed in blocks so a long
    scene never needs its whole spectrogram in memory.
    """
    x = audio.samples.astype(np.float64)
    if len(x) < _N_FFT:
        x = np.pad(x, (0, _N_FFT - len(x)))
    fb = mel_filterbank(audio.sample_rate, _N_FFT, n_mels)
    window = np.hanning(_N_FFT)
    n_frames = 1 + (len(x) - _N_FFT) // _HOP
    total = np.zeros(n_mels)
    block = 2048
    for first in range(0, n_frames, block):
        count = min(block, n_frames - first)
        idx = (first + np.arange(count))[:, None] * _HOP + np.arange(_N_FFT)[None, :]
        spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
        total += (spec @ fb.T).sum(axis=0)
    mean = total / max(n_frames, 1) / _N_FFT
    return tuple(_db(float(p)) for p in mean)


def _floor(value: float) -> float:
    """A level in dB rounded to 0.01, DB_FLOOR for anything lower or not finite (silence is -inf)."""
    return round(max(DB_FLOOR, value), 2) if math.isfinite(value) else DB_FLOOR


def integrated_loudness(audio: Audio) -> float:
    """Integrated loudness (LUFS, BS.1770 via pyloudnorm). A clip shorter than one 400 ms gating block is measured
    on a loop of itself (same mean square, same spectrum); silence gives DB_FLOOR."""
    x = audio.samples.astype(np.float64)
    if len(x) == 0 or not np.any(x):
        return DB_FLOOR
    need = int(math.ceil(_LOUDNESS_MIN_S * audio.sample_rate)) + 1
    if len(x) < need:
        x = np.tile(x, need // len(x) + 1)
    value = ld.measure_lufs(x, audio.sample_rate)
    return DB_FLOOR if value is None else _floor(value)


@dataclass(frozen=True)
class AudioMeasures:
    """What is measured of one clip (a line or a scene)."""

    duration: float
    rms_db: float
    peak_db: float
    loudness: float  # LUFS
    mel_db: tuple[float, ...]
    digest: str  # sha256 of the exact float32 samples and the rate


def measure(audio: Audio) -> AudioMeasures:
    x = audio.samples.astype(np.float64)
    return AudioMeasures(
        duration=round(audio.duration, 4),
        rms_db=_floor(ld.rms_db(x)),
        peak_db=_floor(ld.sample_peak_db(x)),
        loudness=integrated_loudness(audio),
        mel_db=mean_log_mel(audio),
        digest=audio.digest(),
    )


# ----------------------------------------------------------------------------------------------- fingerprints


def line_id(scene: int, character: str, ordinal: int) -> str:
    """The identity of a line across renders: scene index, character, n-th line of that character in the scene."""
    return f"s{scene}/{character}/{ordinal}"


@dataclass(frozen=True)
class LineFingerprint:
    scene: int
    character: str
    ordinal: int  # 1-based, among this character's lines in this scene
    text: str
    key: str  # content key (changes with text, voice, seed, settings)
    start: float  # seconds in the scene file, from the cue sheet
    end: float
    gap: float  # start minus the previous line's end in the scene (the scene start for the first line)
    audio: AudioMeasures
    xvector: tuple[float, ...] | None = None
    source: str = "scene"  # where the samples came from: "store" (the take) or "scene" (a slice of the mix)

    @property
    def id(self) -> str:
        return line_id(self.scene, self.character, self.ordinal)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LineFingerprint":
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in data.items() if k in names}
        d["audio"] = _measures_from_dict(d["audio"])
        d["xvector"] = tuple(d["xvector"]) if d.get("xvector") is not None else None
        return cls(**d)


@dataclass(frozen=True)
class SceneFingerprint:
    index: int
    heading: str
    file: str | None  # relative to the render folder
    audio: AudioMeasures | None
    timings: tuple[tuple[str, float, float], ...] = ()  # (line id, start, end) in script order

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timings"] = [list(t) for t in self.timings]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SceneFingerprint":
        return cls(
            index=int(data["index"]),
            heading=data.get("heading", ""),
            file=data.get("file"),
            audio=_measures_from_dict(data.get("audio")),
            timings=tuple((str(i), float(s), float(e)) for i, s, e in data.get("timings", ())),
        )


@dataclass(frozen=True)
class Golden:
    """All fingerprints of one render of one script."""

    script: str
    scenes: tuple[SceneFingerprint, ...]
    lines: tuple[LineFingerprint, ...]
    engine: dict[str, Any] = field(default_factory=dict)
    version: int = FINGERPRINT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "script": self.script,
            "engine": self.engine,
            "scenes": [s.to_dict() for s in self.scenes],
            "lines": [line.to_dict() for line in self.lines],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Golden":
        return cls(
            script=data["script"],
            engine=dict(data.get("engine") or {}),
            version=int(data["version"]),
            scenes=tuple(SceneFingerprint.from_dict(s) for s in data["scenes"]),
            lines=tuple(LineFingerprint.from_dict(x) for x in data["lines"]),
        )


def _measures_from_dict(d: dict | None) -> AudioMeasures | None:
    if d is None:
        return None
    return AudioMeasures(**{**d, "mel_db": tuple(d["mel_db"])})


def fingerprint_line(
    audio: Audio, *, scene: int, character: str, ordinal: int, text: str, key: str, start: float, end: float,
    gap: float, engine=None, source: str = "scene",
) -> LineFingerprint:
    """Measure one line. With an engine that has `speaker_embedding`, its x-vector is stored (rounded to 1e-4)."""
    xvec = None
    if engine is not None and hasattr(engine, "speaker_embedding"):
        try:
            emb = engine.speaker_embedding(audio)
        except Exception:  # noqa: BLE001 — e.g. a clip too short for the speaker encoder: no x-vector for it
            emb = None
        if emb is not None:
            xvec = tuple(round(float(v), 4) for v in np.asarray(emb, dtype=np.float64).ravel())
    return LineFingerprint(
        scene=scene, character=character, ordinal=ordinal, text=text, key=key, start=round(start, 4),
        end=round(end, 4), gap=round(gap, 4), audio=measure(audio), xvector=xvec, source=source,
    )


# ------------------------------------------------------------------------------------- reading a render folder

CUE_SHEET_NAMES = ("cue-sheet.json", "cues.json", "master.cues.json")
REPORT_NAME = "render-report.json"


@dataclass(frozen=True)
class Cue:
    """One line of the cue sheet, with times relative to its scene file."""

    scene: int
    heading: str
    character: str
    text: str
    start: float  # seconds from the start of the scene file
    end: float
    key: str
    start_sample: int | None = None  # the same, in samples of the scene file, when the cue sheet has them
    end_sample: int | None = None


def read_cue_sheet(out_dir: str | os.PathLike) -> list[Cue]:
    """The render's cue sheet. Accepts the assembly's format — {"scenes": [{scene, start_sample, …}], "lines":
    [{scene, heading, character, text, key, start, end, scene_start, scene_end, start_sample, …}]} with
    master-relative start/end — and a plain list of {scene, heading, character, text, start, end, key} with
    scene-relative times. `scene` may be an index or a label; labels are numbered in order of appearance."""
    out_dir = Path(out_dir)
    path = _find_cue_sheet(out_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RegressionError(f"{path}: cannot read the cue sheet ({e}). Render the script again.") from None
    entries = data.get("lines", data.get("cues")) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise RegressionError(f"{path}: expected a list of cues. Render the script again with this version.")
    meta = data if isinstance(data, dict) else {}
    spans = {s.get("scene"): s for s in (meta.get("scenes") or []) if isinstance(s, dict)}
    rate = meta.get("sample_rate") if isinstance(meta.get("sample_rate"), int) else None
    labels: dict[Any, int] = {}
    cues = []
    for n, e in enumerate(entries, 1):
        try:
            cues.append(_cue(e, spans, labels, rate))
        except (KeyError, TypeError, ValueError) as err:
            raise RegressionError(
                f"{path}: cue {n} is incomplete ({err!r}); it needs scene, character, start and end."
            ) from None
    return cues


def _cue(e: dict, spans: dict, labels: dict, rate: int | None) -> Cue:
    """One cue with scene-relative times; exact ones from sample positions where the cue sheet has them (its
    seconds are rounded to the millisecond, which would make pauses jitter by 1 ms)."""
    raw = e["scene"]
    scene = raw if isinstance(raw, int) and not isinstance(raw, bool) else labels.setdefault(raw, len(labels) + 1)
    start, end = float(e.get("scene_start", e["start"])), float(e.get("scene_end", e["end"]))
    a = b = None
    base = (spans.get(raw) or {}).get("start_sample")
    if e.get("start_sample") is not None and e.get("end_sample") is not None and (base is not None or not spans):
        a, b = int(e["start_sample"]) - int(base or 0), int(e["end_sample"]) - int(base or 0)
        if rate:
            start, end = a / rate, b / rate
    return Cue(scene, str(e.get("heading") or ""), str(e["character"]), str(e.get("text", "")), start, end,
               str(e.get("key", "")), a, b)


def _find_cue_sheet(out_dir: Path) -> Path:
    for name in CUE_SHEET_NAMES:
        if (out_dir / name).is_file():
            return out_dir / name
    report = _read_report(out_dir)
    outputs = report.get("outputs") if isinstance(report.get("outputs"), dict) else {}
    for k in ("cue_sheet", "cues"):
        p = outputs.get(k) or report.get(k)
        if isinstance(p, str) and _resolve(out_dir, p).is_file():
            return _resolve(out_dir, p)
    found = sorted(out_dir.glob("*cue*.json"))
    if found:
        return found[0]
    raise RegressionError(
        f"No cue sheet in {out_dir}. Render the script there first (readthrough render SCRIPT -o {out_dir})."
    )


def _read_report(out_dir: Path) -> dict:
    try:
        data = json.loads((out_dir / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _resolve(out_dir: Path, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else out_dir / path


def scene_files(out_dir: str | os.PathLike) -> dict[int, Path]:
    """Scene index -> its audio file, from render-report.json ("scenes": [{index|scene, path|file|audio}]), else
    from file names that carry the scene number (scene-01.wav, scenes/01-ext-lighthouse.wav)."""
    out_dir = Path(out_dir)
    found: dict[int, Path] = {}
    scenes = _read_report(out_dir).get("scenes") or []
    if isinstance(scenes, dict):
        scenes = [{"index": k, **v} if isinstance(v, dict) else {"index": k, "path": v} for k, v in scenes.items()]
    for pos, s in enumerate(scenes, 1):
        if not isinstance(s, dict):
            continue
        p = next((s[k] for k in ("path", "file", "audio", "output") if isinstance(s.get(k), str)), None)
        idx = s.get("index", s.get("scene_index", s.get("scene", pos)))
        try:
            idx = int(idx)
        except (TypeError, ValueError):
            idx = pos
        if p and _resolve(out_dir, p).is_file():
            found[idx] = _resolve(out_dir, p)
    if found:
        return found
    import re

    for path in sorted([*out_dir.glob("*.wav"), *out_dir.glob("*.flac"), *out_dir.glob("scenes/*.wav"),
                        *out_dir.glob("scenes/*.flac")]):
        m = re.match(r"^(?:scene[-_ ]?)?(\d+)\b", path.stem, re.IGNORECASE)
        if m:
            found.setdefault(int(m.group(1)), path)
    return found


def fingerprint_render(out_dir: str | os.PathLike, store=None, engine=None, script: str | None = None) -> Golden:
    """Fingerprint a finished render: its cue sheet, per-scene audio files and (with `store`, a LineStore) each
    line's take. Without a store — or for a key it lacks — a line is the slice [start, end) of its scene file."""
    out_dir = Path(out_dir)
    cues = read_cue_sheet(out_dir)
    files = scene_files(out_dir)
    report = _read_report(out_dir)
    by_scene: dict[int, list[Cue]] = defaultdict(list)
    for cue in cues:
        by_scene[cue.scene].append(cue)
    lines: list[LineFingerprint] = []
    scenes: list[SceneFingerprint] = []
    for index in sorted(set(by_scene) | set(files)):
        mix = read_audio(files[index]) if index in files else None
        counts: dict[str, int] = defaultdict(int)
        timings = []
        prev_end = 0.0
        for cue in sorted(by_scene.get(index, ()), key=lambda c: c.start):
            counts[cue.character] += 1
            audio, source = _line_audio(cue, store, mix)
            if audio is None:
                continue  # no audio for this line anywhere: it will be reported missing
            fp = fingerprint_line(
                audio, scene=index, character=cue.character, ordinal=counts[cue.character], text=cue.text,
                key=cue.key, start=cue.start, end=cue.end, gap=cue.start - prev_end, engine=engine, source=source,
            )
            prev_end = max(prev_end, cue.end)
            lines.append(fp)
            timings.append((fp.id, fp.start, fp.end))
        heading = next((c.heading for c in by_scene.get(index, ()) if c.heading), "")
        rel = Path(os.path.relpath(files[index], out_dir)).as_posix() if index in files else None
        scenes.append(SceneFingerprint(index, heading, rel, measure(mix) if mix is not None else None, tuple(timings)))
    name = script or str(report.get("script") or out_dir.name)
    return Golden(script=Path(name).stem, scenes=tuple(scenes), lines=tuple(lines), engine=_portable_engine(report))


def _portable_engine(report: dict) -> dict[str, Any]:
    """The render's engine description without what differs between machines and runs: the auto-selection
    reason, and local model folders (kept as their last path part)."""
    info = report.get("engine") if isinstance(report.get("engine"), dict) else {}
    out = {}
    for k, v in info.items():
        if k == "reason":
            continue
        if isinstance(v, str) and ("/" in v or "\\" in v) and Path(v).is_absolute():
            v = f"local:{Path(v).name}"
        out[k] = v
    return out


def default_golden_dir(script: str | os.PathLike) -> Path:
    """Where a script's goldens live: `golden/<script stem>/` beside the script (data/golden/sample/ for
    data/sample.fountain), wherever the command is run from."""
    script = Path(script)
    return script.parent / "golden" / script.stem


def _line_audio(cue: Cue, store, mix: Audio | None) -> tuple[Audio | None, str]:
    if store is not None and cue.key and store.has(cue.key):
        return store.get(cue.key), "store"
    if mix is None:
        return None, ""
    if cue.start_sample is not None and cue.end_sample is not None:
        a, b = cue.start_sample, cue.end_sample
    else:
        a, b = round(cue.start * mix.sample_rate), round(cue.end * mix.sample_rate)
    return Audio(mix.samples[a:b], mix.sample_rate), "scene"


# ------------------------------------------------------------------------------------------------ golden files


def save_golden(directory: str | os.PathLike, golden: Golden) -> Path:
    """Write `fingerprints.json` atomically: sorted keys, one scene or line per text line, so a review diff shows
    exactly which lines changed."""
    d = golden.to_dict()
    compact = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))  # noqa: E731
    head = {k: v for k, v in d.items() if k not in ("scenes", "lines")}
    parts = ["{"]
    for k in sorted(head):
        parts.append(f"  {json.dumps(k)}: {compact(head[k])},")
    for k in ("lines", "scenes"):
        items = ",\n".join(f"    {compact(x)}" for x in d[k])
        parts.append(f'  "{k}": [\n{items}\n  ]' + ("," if k == "lines" else ""))
    parts.append("}")
    path = Path(directory) / GOLDEN_FILE
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


def load_golden(directory: str | os.PathLike) -> Golden:
    path = Path(directory) / GOLDEN_FILE
    if not path.is_file():
        raise RegressionError(
            f"No golden fingerprints at {path}. Create them with `{UPDATE_HINT} --golden {directory}`, "
            "listen to the render, and commit them."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if int(data.get("version", 0)) != FINGERPRINT_VERSION:
            raise RegressionError(
                f"{path} has fingerprint version {data.get('version')}, this readthrough writes "
                f"{FINGERPRINT_VERSION}. Regenerate it with `{UPDATE_HINT} --golden {directory}`."
            )
        return Golden.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise RegressionError(
            f"{path} is not a readable golden file ({e!r}). Regenerate it with `{UPDATE_HINT} --golden {directory}`."
        ) from None


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


# ----------------------------------------------------------------------------------------------------- reports


def to_junit_xml(report: RegressionReport) -> str:
    """JUnit XML for CI systems: a suite of one testcase per line, one of scenes, one of speakers. Changed, missing
    and new lines are failures whose message says why."""
    root = ET.Element("testsuites", name=f"audio-regression {report.script}")
    suites = [
        ("lines", [(f"scene{v.scene}", v.id, v) for v in report.lines]),
        ("scenes", [("scenes", f"scene {v.index}: {v.heading}", v) for v in report.scenes]),
        ("speakers", [("speakers", v.character, v) for v in report.speakers]),
    ]
    total = failed = 0
    for suite_name, cases in suites:
        suite = ET.SubElement(root, "testsuite", name=f"{report.script}.{suite_name}", tests=str(len(cases)))
        n_fail = 0
        for classname, name, v in cases:
            case = ET.SubElement(suite, "testcase", classname=f"{report.script}.{classname}", name=name)
            if isinstance(v, SpeakerVerdict):
                bad, message = not v.ok, f"speaker similarity {v.similarity:.3f}"
            else:
                bad, message = v.failed, f"{v.status}: " + "; ".join(v.reasons)
            if bad:
                n_fail += 1
                ET.SubElement(case, "failure", message=message[:500], type=getattr(v, "status", "speaker")).text = message
            elif message.strip(": "):
                ET.SubElement(case, "system-out").text = message + (" (exact)" if getattr(v, "exact", False) else "")
        suite.set("failures", str(n_fail))
        suite.set("errors", "0")
        total, failed = total + len(cases), failed + n_fail
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def summary_line(report: RegressionReport) -> str:
    """One line for logs and exception messages, naming up to five failing lines."""
    c = report.counts()
    head = (f"audio regression {'passed' if report.ok else 'FAILED'} for {report.script}: {c['changed']} changed, "
            f"{c['missing']} missing, {c['new']} new, {c['within']} within tolerance, {c['same']} same")
    bad = [f"{v.id} ({v.status}: {v.reasons[0] if v.reasons else ''})" for v in report.lines if v.failed]
    bad += [f"speaker {s.character} similarity {s.similarity:.3f}" for s in report.speakers if not s.ok]
    bad += [f"scene {v.index} {v.status}" for v in report.scenes if v.failed and not v.lines]
    more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
    return head + (". " + "; ".join(bad[:5]) + more if bad else ".")


def to_markdown(report: RegressionReport, title: str | None = None) -> str:
    """A summary for people: counts, exact-sample count, every line that is not `same`, scenes, speakers."""
    c = report.counts()
    verdict = "PASSED" if report.ok else "FAILED"
    exact = sum(v.exact for v in report.lines)
    out = [
        title or f"# Audio regression: {report.script} — {verdict}",
        "",
        f"{len(report.lines)} lines: {c['same']} same, {c['within']} within tolerance, {c['changed']} changed, "
        f"{c['missing']} missing, {c['new']} new.",
        f"Exact sample match: {exact}/{len(report.lines)} lines"
        + (" (bit-identical render)." if report.exact else " (differences, if any, are judged by tolerances)."),
        "",
    ]
    out += [f"> {note}" for note in report.notes] + ([""] if report.notes else [])
    flagged = [v for v in report.lines if v.status != "same"]
    if flagged:
        out += ["## Lines", "", "| status | line | text | why |", "|---|---|---|---|"]
        for v in flagged:
            out.append(f"| {v.status} | `{v.id}` | {_md(v.text, 60)} | {_md('; '.join(v.reasons), 200)} |")
        out.append("")
    out += ["## Scenes", "", "| scene | status | Δ duration (s) | max line shift (s) | lines changed/missing/new |",
            "|---|---|---|---|---|"]
    for v in report.scenes:
        bad = sum(v.lines.get(k, 0) for k in FAILING)
        dur = v.deltas.get("duration")
        out.append(f"| {v.index}. {_md(v.heading, 50)} | {v.status}{' (exact)' if v.exact else ''} | "
                   f"{'' if dur is None else f'{dur:+.3f}'} | {v.deltas.get('max_shift', 0):.3f} | {bad} |")
    if report.speakers:
        out += ["", "## Speakers", "", "| character | similarity | ok |", "|---|---|---|"]
        for sp in report.speakers:
            out.append(f"| {sp.character} | {sp.similarity:.3f} | {'yes' if sp.ok else '**no**'} |")
    return "\n".join(out) + "\n"


def _md(text: str, limit: int) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
