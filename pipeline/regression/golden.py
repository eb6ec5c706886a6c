"""The fingerprint model (per line and per scene), reading a render folder into fingerprints, golden files."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import Audio, read_audio
from ..errors import RegressionError
from ..files import atomic_write_text
from .measure import AudioMeasures, measure

FINGERPRINT_VERSION = 1
GOLDEN_FILE = "fingerprints.json"
UPDATE_HINT = "readthrough regress SCRIPT --update"



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
class CueSheetLine:
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


def read_cue_sheet(out_dir: str | os.PathLike) -> list[CueSheetLine]:
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


def _cue(e: dict, spans: dict, labels: dict, rate: int | None) -> CueSheetLine:
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
    return CueSheetLine(scene, str(e.get("heading") or ""), str(e["character"]), str(e.get("text", "")), start, end,
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
    by_scene: dict[int, list[CueSheetLine]] = defaultdict(list)
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


def _line_audio(cue: CueSheetLine, store, mix: Audio | None) -> tuple[Audio | None, str]:
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
