"""The typed, immutable screenplay model. Every element keeps the 1-based source line it starts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Union

PartKind = Literal["parenthetical", "line", "lyric"]


@dataclass(frozen=True)
class TitlePage:
    """Ordered (key, value) pairs as written; values may span lines (joined with "\\n")."""

    entries: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.entries:
            if k.lower() == key.lower():
                return v
        return default

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.entries}


@dataclass(frozen=True)
class Action:
    text: str
    line: int
    centered: bool = False
    type: str = field(default="action", init=False, repr=False)


@dataclass(frozen=True)
class DialoguePart:
    kind: PartKind
    text: str
    line: int = 0


@dataclass(frozen=True)
class Dialogue:
    """One speech: the cue (as written), its canonical character, extension, and parts in script order."""

    character: str
    cue: str
    extension: str | None
    parts: tuple[DialoguePart, ...]
    line: int
    dual: bool = False
    type: str = field(default="dialogue", init=False, repr=False)

    @property
    def spoken(self) -> tuple[DialoguePart, ...]:
        """Parts that are spoken aloud (lines and lyrics), in order."""
        return tuple(p for p in self.parts if p.kind != "parenthetical")

    @property
    def parentheticals(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.parts if p.kind == "parenthetical")


@dataclass(frozen=True)
class Transition:
    text: str
    line: int
    type: str = field(default="transition", init=False, repr=False)


@dataclass(frozen=True)
class Section:
    text: str
    level: int
    line: int
    type: str = field(default="section", init=False, repr=False)


@dataclass(frozen=True)
class Synopsis:
    text: str
    line: int
    type: str = field(default="synopsis", init=False, repr=False)


@dataclass(frozen=True)
class PageBreak:
    line: int
    type: str = field(default="page_break", init=False, repr=False)


@dataclass(frozen=True)
class Lyrics:
    """Lyrics outside any dialogue block (`~` lines in action position)."""

    text: str
    line: int
    type: str = field(default="lyrics", init=False, repr=False)


Element = Union[Action, Dialogue, Transition, Section, Synopsis, PageBreak, Lyrics]


@dataclass(frozen=True)
class Scene:
    """A scene: heading (None for content before the first heading), scene number (`#1A#` → "1A"), elements."""

    heading: str | None
    number: str | None
    line: int
    elements: tuple[Element, ...] = ()

    @property
    def dialogues(self) -> tuple[Dialogue, ...]:
        return tuple(e for e in self.elements if isinstance(e, Dialogue))


@dataclass(frozen=True)
class Screenplay:
    title_page: TitlePage = TitlePage()
    scenes: tuple[Scene, ...] = ()
    source: str | None = None  # file name, when parsed from a file

    def dialogues(self) -> Iterator[tuple[int, Dialogue]]:
        """(scene index, dialogue) in script order."""
        for i, scene in enumerate(self.scenes):
            for d in scene.dialogues:
                yield i, d

    def characters(self) -> list[str]:
        """Canonical speaking characters, in order of first line."""
        seen: dict[str, None] = {}
        for _, d in self.dialogues():
            seen.setdefault(d.character, None)
        return list(seen)

    @property
    def headed_scenes(self) -> tuple[Scene, ...]:
        """Scenes that have a heading (the leading heading-less scene, if any, left out)."""
        return tuple(s for s in self.scenes if s.heading is not None)

    def structure(self) -> dict:
        """`to_json()` without source line numbers: what a parse → emit → parse round trip must preserve."""
        return _without_lines(self.to_json())

    def to_json(self) -> dict:
        """The stable JSON export documented in docs/fountain-json.md."""
        return {
            "title_page": self.title_page.to_dict(),
            "scenes": [
                {
                    "heading": s.heading,
                    "number": s.number,
                    "line": s.line,
                    "elements": [element_json(e) for e in s.elements],
                }
                for s in self.scenes
            ],
        }


def _without_lines(obj):
    if isinstance(obj, dict):
        return {k: _without_lines(v) for k, v in obj.items() if k != "line"}
    if isinstance(obj, list):
        return [_without_lines(v) for v in obj]
    return obj


def element_json(e: Element) -> dict:
    if isinstance(e, Action):
        return {"type": "centered" if e.centered else "action", "text": e.text, "line": e.line}
    if isinstance(e, Dialogue):
        return {
            "type": "dialogue",
            "line": e.line,
            "character": e.character,
            "cue": e.cue,
            "extension": e.extension,
            "dual": e.dual,
            "parts": [{"kind": p.kind, "text": p.text, "line": p.line} for p in e.parts],
        }
    if isinstance(e, Section):
        return {"type": "section", "text": e.text, "level": e.level, "line": e.line}
    if isinstance(e, PageBreak):
        return {"type": "page_break", "line": e.line}
    return {"type": e.type, "text": e.text, "line": e.line}
