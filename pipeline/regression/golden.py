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
from ..cue_sheet import load_cue_sheet
from ..errors import ReadthroughError, RegressionError
from ..files import atomic_write_text
from ..render_report import REPORT_NAME, RenderReport, load_render_report
from ..timeline import SampleSpan
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


@dataclass(frozen=True)
class SceneLine(SampleSpan):
    """One line of the cue sheet, with exact positions relative to its scene file."""

    scene: int
    heading: str
    character: str
    text: str
    key: str
    start_sample: int  # in the scene file
    end_sample: int
    sample_rate: int


def _no_render(out_dir: Path, why: str) -> RegressionError:
    return RegressionError(f"No cue sheet in {out_dir} ({why}). Render the script there first "
                           f"(readthrough render SCRIPT -o {out_dir}).")


def read_render(out_dir: str | os.PathLike) -> tuple[RenderReport, list[SceneLine]]:
    """The render report and its cue sheet's lines (scene-relative sample positions, from the exact master
    positions: the sheet's seconds are rounded to the millisecond, which would make pauses jitter by 1 ms)."""
    out_dir = Path(out_dir)
    if not (out_dir / REPORT_NAME).is_file():
        raise _no_render(out_dir, f"no {REPORT_NAME}")
    try:
        report = load_render_report(out_dir)
        if "cues" not in report.outputs:
            raise _no_render(out_dir, "the render wrote no master: render every scene")
        sheet = load_cue_sheet(_resolve(out_dir, report.outputs["cues"]))
    except ReadthroughError as e:
        if isinstance(e, RegressionError):
            raise
        raise RegressionError(str(e)) from None
    base = {s.scene: s.start_sample for s in sheet.scenes}
    rate = sheet.sample_rate or 0
    lines = [SceneLine(c.scene, c.heading or "", c.character, c.text, c.key, c.start_sample - base.get(c.scene, 0),
                       c.end_sample - base.get(c.scene, 0), rate) for c in sheet.lines]
    return report, lines


def _resolve(out_dir: Path, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else out_dir / path


def scene_files(out_dir: Path, report: RenderReport) -> dict[int, Path]:
    """Scene index -> its audio file, for the scenes the report says are done."""
    found = {}
    for s in report.scenes:
        if s.status == "done" and s.path and _resolve(out_dir, s.path).is_file():
            found[s.index] = _resolve(out_dir, s.path)
    return found


def fingerprint_render(out_dir: str | os.PathLike, store=None, engine=None, script: str | None = None) -> Golden:
    """Fingerprint a finished render: its cue sheet, per-scene audio files and (with `store`, a LineStore) each
    line's take. Without a store — or for a key it lacks — a line is the slice [start, end) of its scene file."""
    out_dir = Path(out_dir)
    report, cues = read_render(out_dir)
    files = scene_files(out_dir, report)
    by_scene: dict[int, list[SceneLine]] = defaultdict(list)
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
    name = script or report.script
    return Golden(script=Path(name).stem, scenes=tuple(scenes), lines=tuple(lines), engine=_portable_engine(report))


def _portable_engine(report: RenderReport) -> dict[str, Any]:
    """The render's engine description without what differs between machines and runs: the auto-selection
    reason, and local model folders (kept as their last path part)."""
    out = {}
    for k, v in report.engine.items():
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


def _line_audio(cue: SceneLine, store, mix: Audio | None) -> tuple[Audio | None, str]:
    if store is not None and cue.key and store.has(cue.key):
        return store.get(cue.key), "store"
    if mix is None:
        return None, ""
    return Audio(mix.samples[cue.start_sample:cue.end_sample], mix.sample_rate), "scene"


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
