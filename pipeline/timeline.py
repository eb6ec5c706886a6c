"""Timelines: where each rendered line sits in a scene file or the master, in integer samples. Made by
`pipeline.assemble`, written out by `pipeline.deliver` (cue sheet, subtitles, chapters)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence, Union

from . import loudness as ld


class SampleSpan:
    """start/end in seconds, derived from integer sample positions (the single source of timing truth)."""

    start_sample: int
    end_sample: int
    sample_rate: int

    @property
    def start(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end(self) -> float:
        return self.end_sample / self.sample_rate


@dataclass(frozen=True)
class TimedLine(SampleSpan):
    """Where one line sits in a file: [start_sample, end_sample) at sample_rate. start/end are derived seconds."""

    key: str
    character: str
    text: str
    start_sample: int
    end_sample: int
    sample_rate: int
    scene_index: int
    heading: str | None = None
    extension: str | None = None
    dual_group: int | None = None
    kind: str = "dialogue"  # dialogue, or narration: heading | action | transition | centered (character NARRATOR)

    @property
    def is_narration(self) -> bool:
        return self.kind != "dialogue"

    def shifted(self, frames: int) -> "TimedLine":
        return replace(self, start_sample=self.start_sample + frames, end_sample=self.end_sample + frames)

    def to_dict(self) -> dict:
        return {
            "key": self.key, "character": self.character, "text": self.text, "start_sample": self.start_sample,
            "end_sample": self.end_sample, "sample_rate": self.sample_rate, "scene_index": self.scene_index,
            "heading": self.heading, "extension": self.extension, "dual_group": self.dual_group, "kind": self.kind,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "TimedLine":
        return cls(**d)


@dataclass(frozen=True)
class SceneMixResult:
    path: Path
    duration: float
    sample_rate: int
    cues: tuple[TimedLine, ...]
    frames: int = 0
    channels: int = 1
    scene_index: int = 0
    heading: str | None = None
    loudness: ld.LoudnessReport | None = None
    blocks: ld.BlockLoudness | None = None  # what the master needs to meter this scene without reading it

    @property
    def n_frames(self) -> int:
        return self.frames or round(self.duration * self.sample_rate)

    def to_dict(self) -> dict:
        """JSON-able form (e.g. a sidecar or a task result); loudness is kept as plain numbers."""
        return {
            "path": str(self.path), "duration": self.duration, "sample_rate": self.sample_rate,
            "frames": self.n_frames, "channels": self.channels, "scene_index": self.scene_index,
            "heading": self.heading, "cues": [c.to_dict() for c in self.cues],
            "loudness": None if self.loudness is None else {
                k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in vars(self.loudness).items()
            },  # strict JSON: -inf (silence) is stored as null
            "blocks": None if self.blocks is None else self.blocks.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "SceneMixResult":
        loud = d.get("loudness")
        return cls(
            Path(d["path"]), d["duration"], d["sample_rate"], tuple(TimedLine.from_dict(c) for c in d["cues"]),
            d.get("frames", 0), d.get("channels", 1), d.get("scene_index", 0), d.get("heading"),
            ld.LoudnessReport(**{k: -math.inf if v is None and k != "lufs" else v for k, v in loud.items()})
            if loud else None,
            ld.BlockLoudness.from_dict(d["blocks"]) if d.get("blocks") else None,
        )  # fmt: skip


@dataclass(frozen=True)
class Chapter(SampleSpan):
    index: int  # scene index
    title: str
    start_sample: int
    end_sample: int
    sample_rate: int


@dataclass(frozen=True)
class MasterResult:
    path: Path  # the first PCM master written (wav or flac)
    paths: dict[str, Path]  # every master file written, by format
    title: str
    duration: float
    frames: int
    sample_rate: int
    channels: int
    chapters: tuple[Chapter, ...]
    cues: tuple[TimedLine, ...]  # master-relative
    lufs: float | None
    true_peak_db: float
    gain_db: float  # the one gain applied to the scenes while streaming
    notes: tuple[str, ...] = field(default=())  # formats skipped and why
    copied: tuple[Path, ...] = field(default=())  # masters whose samples are the scenes' bytes copied: not worth
    # hashing (0.5 s of CPU per 400 MB, on every edit) since they are rebuilt from the scenes once touched


Timeline = Union[MasterResult, SceneMixResult, Sequence[SceneMixResult], Sequence[TimedLine]]


def timeline_cues(source: Timeline) -> tuple[TimedLine, ...]:
    """Master-relative cues from a MasterResult, one scene, scenes in master order (offsets = their lengths, as
    assemble_master concatenates them), or cues already on one timeline."""
    if isinstance(source, MasterResult):
        return source.cues
    if isinstance(source, SceneMixResult):
        return source.cues
    items = list(source)
    if items and isinstance(items[0], SceneMixResult):
        out, offset = [], 0
        for scene in items:
            out.extend(c.shifted(offset) for c in scene.cues)
            offset += scene.n_frames
        return tuple(out)
    return tuple(items)
