"""`render-report.json`: what one render did — engine, counts, per-scene status and outputs, every failed line with its
reason. The render flow fills a `RenderReport` and writes it with `save_render_report`; every reader (the CLI, the
regression check, the farm) loads it with `load_render_report`. One schema, one writer, one reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import RenderError
from .files import atomic_write_json

REPORT_NAME = "render-report.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FailedLine(_Record):
    """One line that could not be rendered, and why."""

    scene: str  # the scene's label (its number in the script, or its position)
    key: str
    character: str
    source_line: int
    text: str
    reason: str
    scene_index: int | None = None


class RepairedLine(_Record):
    """A stored line whose file did not match its sidecar (truncated, replaced, unreadable): rendered again."""

    key: str
    character: str
    source_line: int
    reason: str


class SceneCue(_Record):
    """One line as placed in its scene file (seconds from the scene start, ms precision): what the review page
    lists and seeks to."""

    key: str
    character: str
    text: str
    start: float
    end: float
    extension: str | None = None
    source_line: int | None = None


class SceneLoudness(_Record):
    """The scene mix's measured loudness (pipeline.loudness.LoudnessReport; -inf stored as null)."""

    lufs: float | None = None
    rms_db: float | None = None
    true_peak_db: float | None = None
    sample_peak_db: float | None = None
    gain_db: float = 0.0
    limited: bool = False


class SceneRecord(_Record):
    scene: str  # label
    index: int
    heading: str | None
    status: Literal["pending", "done", "failed", "interrupted"] = "pending"
    cached: bool = False
    path: str | None = None  # the scene's audio file
    duration: float = 0.0
    lines: int = 0
    rendered: int = 0
    reused: int = 0
    failed: int = 0
    failed_lines: list[FailedLine] = []
    error: str | None = None  # why the whole scene failed (rather than some of its lines)
    repaired_lines: list[RepairedLine] = []  # damaged in the line store, rendered again in this run
    cues: list[SceneCue] = []  # a done scene's lines with their times in its file
    loudness: SceneLoudness | None = None


class Counts(_Record):
    lines: int = 0
    rendered: int = 0
    reused: int = 0
    failed: int = 0


class VariantRecord(_Record):
    """A locked delivery variant of a character's voice (pipeline.variants)."""

    lock_path: str
    lock_digest: str
    similarity: float | None = None  # cosine of its x-vector to the neutral voice's


class CastRecord(_Record):
    lock_path: str
    lock_digest: str
    variants: dict[str, VariantRecord] = {}  # delivery class -> variant


class Timings(_Record):
    """Where one run's time went, in seconds: casting, engine (rendering lines), mixing (the wall spent on scene
    mixes), master (master files and deliverables), other (parsing, planning, orchestration); the five add up to
    the wall. mixing_overlapped: scene mixing done beside the engine (render.mix_while_rendering), which cost no
    wall time and is not in that sum. Cached work costs nothing."""

    casting: float = 0.0
    engine: float = 0.0
    mixing: float = 0.0
    master: float = 0.0
    other: float = 0.0
    mixing_overlapped: float = 0.0


class NarrationRecord(_Record):
    mode: str = "none"  # settings narration.mode
    lines: int = 0  # script elements the narrator read (headings, action paragraphs …), not pieces


class LexiconRecord(_Record):
    entries: int = 0
    sources: list[str] = []  # the lexicon file and/or the cast file's [lexicon]
    unused: list[str] = []  # entries whose word no spoken line contains (reported, not an error)
    respelled_lines: int = 0


class RenderReport(_Record):
    script: str
    script_name: str
    status: Literal["completed", "failed", "interrupted"]  # interrupted: Ctrl-C; run the same command to resume
    engine: dict[str, Any]  # the engine's description, plus "name", "reason" (why it was chosen) and the run's batching
    # figures: batch_size, steps, lines, mean_busy_rows, padding_waste, prefills, tokens (pipeline.engines.session)
    counts: Counts = Counts()
    title: str | None = None
    error: str | None = None  # why the run stopped before any scene result
    scenes: list[SceneRecord] = []
    failed_lines: list[FailedLine] = []
    repaired_lines: list[RepairedLine] = []  # lines whose stored files were damaged, rendered again
    warnings: list[str] = []  # e.g. lines truncated to render.max_words_per_line
    outputs: dict[str, str] = {}  # master files, cue sheet, subtitles, labels by kind
    master_note: str | None = None  # why there is no master, when there is none
    cast: dict[str, CastRecord] = {}
    audio_seconds: float = 0.0
    started: str = ""
    wall_seconds: float = 0.0  # the command's wall time, as its console summary shows it
    flow_seconds: float | None = None  # the render flow's own share of it (None: no flow ran, see `replayed`)
    timings: Timings = Timings()  # where the flow's time went
    line_store: str | None = None
    force: bool = False
    scenes_requested: list[str | int] = []
    narration: NarrationRecord = NarrationRecord()
    lexicon: LexiconRecord = LexiconRecord()
    inputs_key: str | None = None  # content key of everything that determined the outputs (flows/replay)
    file_stats: dict[str, list[int] | None] = {}  # [size, mtime_ns] of every file written, for that replay
    replayed: bool = False  # answered from the last report: nothing changed, no flow ran
    command: list[str] = []  # the command line that runs this render again (shown on the review page)

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


def save_render_report(path: str | Path, report: RenderReport) -> Path:
    return atomic_write_json(path, report.to_json())


def load_render_report(path: str | Path) -> RenderReport:
    """The report at `path` (a file, or a render folder holding `render-report.json`)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_NAME
    try:
        return RenderReport.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise RenderError(f"No render report at {path}. Render the script there first "
                          f"(readthrough render SCRIPT -o {path.parent}).") from None
    except (OSError, json.JSONDecodeError, ValidationError) as e:
        raise RenderError(f"{path}: not a render report this version can read ({e}). Render the script again "
                          f"(readthrough render SCRIPT -o {path.parent}).") from None
