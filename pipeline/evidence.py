"""Per-character evidence gathered from the screenplay: what they say, how, where, and how they are introduced."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .fountain import canonical_name, speech_text
from .keys import content_key
from .screenplay import Action, Dialogue, Screenplay

__all__ = ["Evidence", "Introduction", "collect_evidence", "canonical_name", "EVIDENCE_VERSION"]

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


# ------------------------------------------------------------------------------------------ collecting

_APOS = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_CAPS_WORD_RE = re.compile(r"\s+(?:[A-Z][A-Z'.\-]*[A-Z.]|[A-Z])(?![\w'])")
_AGE_WORDS = (
    r"(?:(?:early|mid|late)[- ]?)?(?:teens|twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties"
    r"|[1-9]0s|\d{1,3}s?)(?:-ish)?"
)
_AGE_PAREN_RE = re.compile(r"\s*\(([^()]*(?:\d|teen|ties|ish|old|young|age)[^()]*)\)", re.IGNORECASE)
_AGE_COMMA_RE = re.compile(r"\s*,\s*(" + _AGE_WORDS + r")(?=[\s,.;(]|$)", re.IGNORECASE)
_SPLIT_RE = re.compile(r"\s*,\s*|\s+and\s+")


def _name_pattern(name: str) -> re.Pattern:
    """Word-boundary, case-aware matcher: the name in capitals (`AL`) or capitalised (`Al`), never inside another
    word (`ALWAYS`) and never in lower case (`al`)."""
    forms = {name, " ".join(w[:1].upper() + w[1:].lower() for w in name.split(" "))}
    alt = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(r"(?<![\w'])(?:" + alt + r")(?![\w])")


def _introduction(name: str, text: str, line: int) -> Introduction | None:
    """If `text` (an action paragraph, speech-folded) names `name` in capitals, the introducing sentence, its age
    note and the describing phrases after the name; else None."""
    m = re.search(r"(?<![\w'])" + re.escape(name) + r"(?![\w])", text)
    if not m:
        return None
    starts = [0] + [x.end() for x in _SENTENCE_END_RE.finditer(text) if x.end() <= m.start()]
    start = starts[-1]
    nxt = _SENTENCE_END_RE.search(text, m.end())
    sentence = text[start : nxt.start() if nxt else len(text)].strip()
    pos = m.end()
    while (w := _CAPS_WORD_RE.match(text, pos)) and not _AGE_PAREN_RE.match(text, pos):
        pos = w.end()  # a surname in capitals: MARGARET HALE
    age = None
    a = _AGE_PAREN_RE.match(text, pos) or _AGE_COMMA_RE.match(text, pos)
    if a:
        age, pos = a.group(1).strip(), a.end()
        if (b := _AGE_PAREN_RE.match(text, pos)) is not None:
            pos = b.end()  # `40 (or any age)`: a second, qualifying note
    rest = text[pos : nxt.start() if nxt else len(text)].strip()
    descriptors: tuple[str, ...] = ()
    if rest.startswith(","):
        segments = [seg for seg in rest.strip(",.!?; ").split(",") if seg.strip()]
        if len(segments) > 1:
            segments = segments[:-1]  # `NAME, appositive, predicate.` → the predicate does not describe them
        pieces = [p for seg in segments for p in _SPLIT_RE.split(seg.strip())]
        descriptors = tuple(p for p in (q.strip(" .;:") for q in pieces) if p)
    return Introduction(text=sentence, line=line, age_note=age, descriptors=descriptors)


def collect_evidence(screenplay: Screenplay) -> dict[str, Evidence]:
    """Evidence per speaking character (canonical name → Evidence), characters in order of first line."""
    acc: dict[str, dict] = {}
    for _, d in screenplay.dialogues():
        acc.setdefault(d.character, {"cues": {}, "lines": [], "parens": [], "ext": [], "scenes": {}})
    patterns = {name: _name_pattern(name) for name in acc}
    mentions: dict[str, list[str]] = {name: [] for name in acc}
    intro: dict[str, Introduction | None] = {name: None for name in acc}
    for index, scene in enumerate(screenplay.scenes):
        label = scene.heading or "(before the first scene)"
        for e in scene.elements:
            if isinstance(e, Dialogue):
                a = acc[e.character]
                a["cues"].setdefault(e.cue, None)
                a["ext"].append(e.extension)
                a["scenes"].setdefault(index, label)
                for p in e.parts:
                    if p.kind == "parenthetical":
                        a["parens"].append(p.text)
                    else:
                        spoken = speech_text(p.text)
                        if spoken:
                            a["lines"].append(spoken)
            elif isinstance(e, Action) and not e.centered:
                text = speech_text(e.text).translate(_APOS)
                for name, pat in patterns.items():
                    if pat.search(text):
                        mentions[name].append(text)
                        acc[name]["scenes"].setdefault(index, label)
                        if intro[name] is None:
                            intro[name] = _introduction(name, text, e.line)
    return {
        name: Evidence(
            name=name,
            cues=tuple(a["cues"]),
            lines=tuple(a["lines"]),
            parentheticals=tuple(a["parens"]),
            action_mentions=tuple(mentions[name]),
            scenes=tuple(a["scenes"][k] for k in sorted(a["scenes"])),
            introduction=intro[name],
            extensions=tuple(a["ext"]),
        )
        for name, a in acc.items()
    }
