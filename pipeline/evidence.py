"""Per-character evidence gathered from the screenplay: what they say, how, where, and how they are introduced."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .keys import content_key

EVIDENCE_VERSION = "1"


@dataclass(frozen=True)
class Introduction:
    """The first action line naming the character in capitals, e.g. `ELENA (30s), sharp-eyed and tired.`"""

    text: str
    line: int
    age_note: str | None  # "30s", "40", "mid-thirties" … as written
    descriptors: tuple[str, ...]  # describing words/phrases after the name, e.g. ("sharp-eyed", "tired")


@dataclass(frozen=True)
class Evidence:
    name: str  # canonical name
    cues: tuple[str, ...]  # distinct cues as written
    lines: tuple[str, ...]  # speech text of each spoken part, in order
    parentheticals: tuple[str, ...]
    action_mentions: tuple[str, ...]  # action lines naming the character (word-boundary)
    scenes: tuple[str, ...]  # scene headings, once per scene the character speaks or is mentioned in
    introduction: Introduction | None
    extensions: tuple[str | None, ...] = ()  # per dialogue block, e.g. "V.O."

    @property
    def line_count(self) -> int:
        return len(self.lines)

    def to_json(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return content_key("evidence", EVIDENCE_VERSION, self.to_json())
