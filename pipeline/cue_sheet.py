"""`<title>.cues.json`: where every line and scene sits in the master. Written by `pipeline.deliver`, read back by
the regression check (`pipeline.regression.golden`) and any other tool; one schema for both.

Times: `start`/`end` are master-relative seconds (millisecond precision), `scene_start`/`scene_end` relative to the
line's scene file; `start_sample`/`end_sample` are the exact master-relative sample positions."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ReadthroughError
from .files import atomic_write_json


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CueSheetScene(_Record):
    scene: int  # the scene's index in the script
    heading: str | None
    start: float
    end: float
    start_sample: int
    end_sample: int
    file: str | None = None  # the scene's audio file, when the cue sheet covers scene files rather than a master


class CueSheetLine(_Record):
    scene: int
    heading: str | None
    character: str
    text: str
    key: str  # the line's content key in the line store
    start: float
    end: float
    scene_start: float
    scene_end: float
    start_sample: int
    end_sample: int
    extension: str | None = None  # V.O., O.S. …
    kind: str = "dialogue"  # dialogue, or what the narrator (character NARRATOR) reads: heading | action | …


class CueSheet(_Record):
    title: str | None
    sample_rate: int | None
    scenes: list[CueSheetScene]
    lines: list[CueSheetLine]


def save_cue_sheet(path: str | Path, sheet: CueSheet) -> Path:
    return atomic_write_json(path, sheet.model_dump(mode="json"))


def load_cue_sheet(path: str | Path) -> CueSheet:
    path = Path(path)
    try:
        return CueSheet.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as e:
        raise ReadthroughError(f"{path}: not a cue sheet this version can read ({e}). Render the script again "
                               f"(readthrough render SCRIPT -o {path.parent}).") from None
