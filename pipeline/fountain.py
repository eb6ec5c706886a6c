"""Fountain 1.1 parser (fountain.io/syntax), speech-text view and re-emitter.

The parser works in three linear passes, all with precompiled regexes and no backtracking-prone patterns:

1. normalise: strip a BOM, turn CRLF/CR into LF, expand tabs to four spaces (spec: "Tabs are converted to four
   spaces");
2. remove boneyard `/* */` (nested) and notes `[[ ]]` while keeping every surviving line's source line number. A line
   wholly consumed by a one-line note/boneyard disappears (so a note between two dialogue lines does not break the
   block); a line wholly consumed by a *multi-line* boneyard becomes one blank line (the spec's own boneyard example
   leaves `CUT TO:` and the next heading as separate elements). Notes containing a truly blank line are not notes;
3. classify, block by block: the first line after a blank line decides the block's kind.

Decisions where the spec is silent or loose (each one tested):
- a scene heading needs a blank line before it but not after (`INT. HOUSE - DAY` directly over action is still a
  heading, not a character called "INT. HOUSE - DAY"); single-line elements (heading, transition, section, synopsis,
  page break) end their block, so `# Act` with `= synopsis` beneath gives both;
- a character cue is not a cue when its name ends in `:` (`CUT TO:` over a line is action, not a speaker);
- action keeps leading indentation; one Action element per paragraph; centered lines and `~` lyric lines inside an
  action paragraph split it into runs of Action(centered=True) / Lyrics / Action;
- `^` pairs a cue with the dialogue right before it when that one is not already in a pair; both get dual=True;
- a parenthetical is a dialogue line wrapped in parentheses, possibly over several lines (`(starting the` / `engine)`);
- an unclosed `/*` or `[[` is kept as text (never swallow the rest of a script).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import ScriptError
from .screenplay import (
    Action,
    Dialogue,
    DialoguePart,
    Element,
    Lyrics,
    PageBreak,
    Scene,
    Screenplay,
    Section,
    Synopsis,
    TitlePage,
    Transition,
)

__all__ = ["parse_fountain", "read_script", "speech_text", "emit_fountain", "canonical_name", "parse_cue", "CharacterCue",
           "MAX_LINE_CHARS", "plain_title", "FOUNTAIN_HINT", "check_screenplay"]

MAX_LINE_CHARS = 20_000  # a "line" longer than this is not a screenplay (minified blob, binary dump)

_HEADING_RE = re.compile(r"(?:INT\.?/EXT|EXT\.?/INT|I\.?/E|INT|EXT|EST)[.\s]", re.IGNORECASE)
_SCENE_NUMBER_RE = re.compile(r"\s*#([0-9A-Za-z.\-]+)#\s*$")
_PAGE_BREAK_RE = re.compile(r"={3,}")
_SECTION_RE = re.compile(r"(#+)\s*(.*)")
_TITLE_KEY_RE = re.compile(r"([^\W\d_][\w '’.\-/&]{0,60}?)[ ]*:(.*)")
_BONEYARD_TOKEN_RE = re.compile(r"/\*|\*/")
_NOTE_BREAK_RE = re.compile(r"\n ?\n")  # a truly blank line (fewer than two spaces) ends any note attempt
_PAREN_GROUP_RE = re.compile(r"\(([^()]*)\)")
_EXTENSIONS_ONLY_RE = re.compile(r"(?:\([^()]*\)\s*)*")
_CONTD_RE = re.compile(r"\s*(?:CONT(?:['’]?D|\.|INUED|INUING)?|MORE)\s*", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_EMPHASIS_RE = re.compile(r"\\(.)|[*_]")
_WS_RE = re.compile(r"\s+")
_NOTE_INLINE_RE = re.compile(r"\[\[.*?\]\]", re.DOTALL)
_MACRO_RE = re.compile(r"\{\{[^{}\n]*\}\}")  # `{{PAGENUMBER: 101}}` (Highland/SwiftGuion markup): never spoken


# --------------------------------------------------------------------------------------------------- reading


def _utf16_or_32(data: bytes) -> str | None:
    """The codec of a UTF-16/32 file (by BOM, or by the NUL byte of every other byte of ASCII-heavy UTF-16)."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return codec
    sample = data[:4096]
    if len(sample) >= 8 and len(sample) % 2 == 0:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
    return None


def read_script(path) -> Screenplay:
    """Read and parse a Fountain file. Raises ScriptError (naming the file) for missing/binary/non-Fountain files;
    warns (naming the byte offset) and decodes with replacement when the bytes are not valid UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ScriptError(f"{path}: no such file. Check the path (run `ls {path.parent}`).") from None
    except IsADirectoryError:
        raise ScriptError(f"{path} is a directory; give the path of a .fountain file.") from None
    except OSError as e:
        raise ScriptError(f"{path}: cannot read the file ({e.strerror}).") from None
    wide = _utf16_or_32(data)
    if wide is not None:  # Windows editors save "Unicode" as UTF-16: read it (it holds NUL bytes by design)
        try:
            data = data.decode(wide).lstrip("\ufeff").encode("utf-8")
        except UnicodeDecodeError as e:
            raise ScriptError(f"{path}: looks like a {wide.upper()} text file but byte {e.start} is not valid "
                              f"{wide.upper()}. Re-save the file as UTF-8.") from None
    if b"\x00" in data:
        raise ScriptError(
            f"{path} is not a Fountain screenplay: it holds binary data (a NUL byte at offset {data.index(0)}). "
            "Give a plain-text .fountain file."
        )
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    data = data[bom:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        warnings.warn(
            f"{path}: bytes at offset {e.start + bom} are not valid UTF-8; decoded with replacement characters "
            "(U+FFFD). "
            "Re-save the file as UTF-8 to silence this.",
            UnicodeWarning,
            stacklevel=2,
        )
        text = data.decode("utf-8", errors="replace")
    longest = max((len(line) for line in text.splitlines()), default=0)
    if longest > MAX_LINE_CHARS:
        raise ScriptError(
            f"{path} is not a Fountain screenplay: it has a single line of {longest} characters "
            f"(more than {MAX_LINE_CHARS}). Give a plain-text .fountain file with one element per line."
        )
    return parse_fountain(text, source=str(path))


FOUNTAIN_HINT = (
    "A Fountain script has scene headings such as `INT. KITCHEN - NIGHT` on their own line after a blank line, "
    "and dialogue as a character cue in CAPITALS on its own line (`MARGARET`) with the speech on the next line; "
    "optionally a title page of `Title: ...` lines at the top (see https://fountain.io/syntax)."
)


def check_screenplay(screenplay: Screenplay, path) -> None:
    """For commands that voice a script (cast, render, regress): an empty file, or one with no scene heading, no
    dialogue and no title page (prose, notes, a .txt) is a ScriptError naming the file and showing what Fountain
    looks like. `read_script` itself accepts any text: every text is valid Fountain (action), and parser fixtures
    are such fragments."""
    if not screenplay.scenes or not any(s.elements or s.heading for s in screenplay.scenes):
        if not screenplay.title_page.entries:
            raise ScriptError(f"{path} is empty: there is no screenplay in it. {FOUNTAIN_HINT}")
    if screenplay.title_page.entries or screenplay.headed_scenes:
        return
    if any(True for _ in screenplay.dialogues()):
        return
    raise ScriptError(f"{path} does not look like a Fountain screenplay: it has no scene heading, no dialogue and "
                      f"no title page. {FOUNTAIN_HINT}")


def plain_title(text: str | None) -> str | None:
    """A title page value as plain text: emphasis markers (`*`, `**`, `_`) and notes dropped, escapes resolved,
    line breaks folded (`**THE _LAST_ NIGHT**` → `THE LAST NIGHT`). For reports, file tags and chapter lists."""
    if text is None:
        return None
    return speech_text(text) or None


# --------------------------------------------------------------------------------------------------- cues


@dataclass(frozen=True)
class CharacterCue:
    """A character cue split into its parts: `@McCLANE (V.O.) (CONT'D) ^`."""

    cue: str  # as written, without `@` and `^`
    name: str  # the name part, before any parenthetical
    extension: str | None  # non-CONT'D parentheticals joined, e.g. "V.O."
    dual: bool
    forced: bool


def parse_cue(text: str) -> CharacterCue:
    """Split a cue line (any validity) into name, extension, dual caret and forcing `@`."""
    s = text.strip()
    forced = s.startswith("@")
    if forced:
        s = s[1:].lstrip()
    dual = s.endswith("^")
    while s.endswith("^"):
        s = s[:-1].rstrip()
    cut = s.find("(")
    name = (s if cut < 0 else s[:cut]).strip()
    exts = [] if cut < 0 else [g.strip() for g in _PAREN_GROUP_RE.findall(s[cut:])]
    exts = [g for g in exts if g and not _CONTD_RE.fullmatch(g)]
    return CharacterCue(cue=s, name=name, extension=" ".join(exts) or None, dual=dual, forced=forced)


def _is_auto_cue(s: str) -> bool:
    """Spec cue rule on a stripped line: a name with at least one letter and no lowercase, then only parentheticals
    (any case), then an optional `^`. Names ending in `:` are left to transitions/action."""
    if s.endswith("^"):
        s = s[:-1].rstrip()
    cut = s.find("(")
    name = s if cut < 0 else s[:cut]
    if cut >= 0 and not _EXTENSIONS_ONLY_RE.fullmatch(s, cut):
        return False
    name = name.rstrip()
    if not name or name.endswith(":"):
        return False
    has_letter = False
    for ch in name:
        if ch.islower():
            return False
        if ch.isalpha():
            has_letter = True
    return has_letter


# --------------------------------------------------------------------------------------------------- cleanup


def _normalise(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\t" in text:
        text = text.replace("\t", "    ")
    return text


def _boneyard_spans(text: str) -> list[tuple[int, int]]:
    spans, depth, start = [], 0, 0
    for m in _BONEYARD_TOKEN_RE.finditer(text):
        if m.group() == "/*":
            if depth == 0:
                start = m.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                spans.append((start, m.end()))
    return spans


def _note_spans(text: str) -> list[tuple[int, int]]:
    spans, pos, close = [], 0, -1
    while True:
        i = text.find("[[", pos)
        if i < 0:
            return spans
        if close < i + 2:
            close = text.find("]]", i + 2)
            if close < 0:
                return spans
        broken = _NOTE_BREAK_RE.search(text, i, close)
        if broken:  # every `[[` before the blank line would span it too: skip them all (keeps this linear)
            pos = broken.end() - 1
            continue
        spans.append((i, close + 2))
        pos = close + 2
        close = -1


def _remove(lines: list[tuple[str, int]], spans_of, blank_multiline: bool):
    """Remove spans from the joined lines; return (new lines, changed). Each surviving line keeps the number of the
    source line it starts on; a line emptied by a removal is dropped (or, for a multi-line removal with
    blank_multiline, becomes one blank line)."""
    text = "\n".join(t for t, _ in lines)
    spans = spans_of(text)
    if not spans:
        return lines, False
    out: list[tuple[str, int]] = []
    pieces: list[str] = []
    idx = 0  # index in `lines` of the source line at the scan position
    cur = lines[0][1]  # number of the source line the current output line starts on
    touched = multiline = False
    pos = 0
    for start, end in spans + [(len(text), len(text))]:
        parts = text[pos:start].split("\n")
        pieces.append(parts[0])
        for part in parts[1:]:
            joined = "".join(pieces)
            if not touched or joined.strip():
                out.append((joined, cur))
            elif multiline and blank_multiline:
                out.append(("", cur))
            idx += 1
            cur = lines[idx][1]
            pieces, touched, multiline = [part], False, False
        if end > start:
            n = text.count("\n", start, end)
            idx += n
            touched = True
            multiline = multiline or n > 0
        pos = end
    joined = "".join(pieces)
    if not touched or joined.strip():
        out.append((joined, cur))
    elif multiline and blank_multiline:
        out.append(("", cur))
    return out, True


def _clean_lines(text: str) -> list[tuple[str, int]]:
    """Normalised text → [(line, source line number)] with boneyard and notes removed (to a fixed point, so that
    re-parsing emitted text never finds a note the first parse did not)."""
    lines = [(t, i) for i, t in enumerate(_normalise(text).split("\n"), start=1)]
    changed, passes = True, 0
    while changed and passes < 100:  # removals can expose new `[[ ]]`/`/* */` pairs; 100 passes bounds the work
        changed, passes = False, passes + 1
        if "/*" in text:
            lines, c1 = _remove(lines, _boneyard_spans, True)
            changed |= c1
        if "[[" in text:
            lines, c2 = _remove(lines, _note_spans, False)
            changed |= c2
        if changed:
            text = "\n".join(t for t, _ in lines)
    return lines


# --------------------------------------------------------------------------------------------------- title page


def _title_page(lines: list[tuple[str, int]]) -> tuple[TitlePage, int]:
    """(title page, index of the first body line). A title page is the first block when every line is `Key: value`
    or an indented (3+ spaces) continuation; a lone `KEY:` with no value (`CUT TO:`, `FADE IN:`) is not one."""
    i = 0
    if not lines or not _TITLE_KEY_RE.fullmatch(lines[0][0]):
        return TitlePage(), 0
    entries: list[tuple[str, list[str]]] = []
    while i < len(lines) and lines[i][0].strip():
        raw = lines[i][0]
        m = None if raw.startswith("   ") else _TITLE_KEY_RE.fullmatch(raw)
        if m:
            value = m.group(2).strip()
            entries.append((m.group(1).strip(), [value] if value else []))
        elif raw.startswith("   ") and entries:
            entries[-1][1].append(raw.strip())
        else:
            return TitlePage(), 0
        i += 1
    if len(entries) == 1 and not entries[0][1]:
        return TitlePage(), 0
    return TitlePage(tuple((k, "\n".join(v)) for k, v in entries)), i


# --------------------------------------------------------------------------------------------------- body


def _blank(raw: str) -> bool:
    return not raw.strip()


def _connector(raw: str) -> bool:
    """A whitespace-only line of two or more spaces: keeps a dialogue/action block together (spec "two spaces")."""
    return len(raw) >= 2 and not raw.strip()


def _is_heading(s: str) -> bool:
    return bool(_HEADING_RE.match(s)) or (len(s) > 1 and s[0] == "." and s[1].isalnum())


def _is_centered(s: str) -> bool:
    return len(s) >= 2 and s[0] == ">" and s[-1] == "<"


def _start_kind(raw: str, next_raw: str | None) -> str:
    """Kind of the block that starts (after a blank line) with `raw`, followed by `next_raw` (None at end)."""
    s = raw.strip()
    if _PAGE_BREAK_RE.fullmatch(s):
        return "page_break"
    c = s[0]
    has_next = next_raw is not None and not _blank(next_raw)
    if c == "!":
        return "action"
    if c == "@":
        return "dialogue" if has_next and len(s) > 1 else "action"
    if c == "~":
        return "action"  # lyrics: an action-position paragraph splits them out
    if c == "#":
        return "section"
    if c == "=":
        return "synopsis"
    if c == ">":
        return "action" if _is_centered(s) else "transition"
    if _is_heading(s):
        return "heading"
    if s.endswith("TO:") and s == s.upper() and raw == raw.rstrip() and not has_next:
        return "transition"
    if has_next and _is_auto_cue(s):
        return "dialogue"
    return "action"


def _heading(s: str) -> tuple[str, str | None]:
    if s[0] == "." and len(s) > 1 and s[1].isalnum():
        s = s[1:]
    number = None
    m = _SCENE_NUMBER_RE.search(s)
    if m:
        number = m.group(1)
        s = s[: m.start()]
    return s.strip(), number


def _paren_end(lines, j: int, end: int) -> int:
    """If lines[j] opens a parenthetical, the index after its last line; else -1."""
    s = lines[j][0].strip()
    if not s.startswith("("):
        return -1
    if s.endswith(")"):
        return j + 1
    if ")" in s:
        return -1
    for k in range(j + 1, min(end, j + 4)):
        t = lines[k][0].strip()
        if not t or "(" in t:
            return -1
        if t.endswith(")"):
            return k + 1 if ")" not in t[:-1] else -1
        if ")" in t:
            return -1
    return -1


def _trim(buf: list[str]) -> list[str]:
    a, b = 0, len(buf)
    while a < b and not buf[a]:
        a += 1
    while b > a and not buf[b - 1]:
        b -= 1
    return buf[a:b]


def _dialogue(lines, i: int, n: int) -> tuple[Dialogue, int]:
    raw, line_no = lines[i]
    cue = parse_cue(raw)
    end = i + 1
    while end < n and (not _blank(lines[end][0]) or _connector(lines[end][0])):
        end += 1
    parts: list[DialoguePart] = []
    kind, buf, buf_line = None, [], 0

    def close():
        body = buf if kind == "lyric" else _trim(buf)  # a bare `~` is an (empty) lyric line, kept
        if kind and body:
            parts.append(DialoguePart(kind, "\n".join(body), buf_line))

    j = i + 1
    while j < end:
        t, no = lines[j]
        s = t.strip()
        stop = _paren_end(lines, j, end)
        if stop > 0:
            close()
            text = "\n".join(lines[k][0].strip() for k in range(j, stop))
            parts.append(DialoguePart("parenthetical", text, no))
            kind, buf = None, []
            j = stop
            continue
        k = "lyric" if s.startswith("~") else "line"
        if k == "lyric":
            s = s[1:].strip()
        if k != kind:
            close()
            kind, buf, buf_line = k, [], no
        if s and not any(buf):
            buf_line = no  # a part's line is its first non-empty line
        buf.append(s)
        j += 1
    close()
    return (
        Dialogue(
            character=canonical_name(cue.cue),
            cue=cue.cue,
            extension=cue.extension,
            parts=tuple(parts),
            line=line_no,
            dual=cue.dual,
        ),
        end,
    )


def _action_block(lines, i: int, n: int, out: list[Element]) -> int:
    """An action paragraph from lines[i] to the next blank line, split into action / centered / lyrics runs."""
    kind, buf, buf_line = None, [], 0

    def close():
        body = buf if kind in ("lyrics", "centered") else _trim(buf)
        if not body:
            return
        if kind == "lyrics":
            out.append(Lyrics("\n".join(body), buf_line))
        elif kind == "centered":
            out.append(Action("\n".join(body), buf_line, centered=True))
        else:
            out.append(Action("\n".join(body), buf_line))

    j = i
    while j < n and (j == i or not _blank(lines[j][0]) or _connector(lines[j][0])):
        raw, no = lines[j]
        s = raw.strip()
        if raw.startswith("!"):
            k, text = "action", raw[1:].rstrip()
        elif _is_centered(s):
            k, text = "centered", s[1:-1].strip()
        elif s.startswith("~"):
            k, text = "lyrics", s[1:].strip()
        else:
            k, text = "action", raw.rstrip() if s else ""
        if k != kind:
            close()
            kind, buf, buf_line = k, [], no
        if not any(buf) and text:
            buf_line = no
        buf.append(text)
        j += 1
    close()
    return j


def parse_fountain(text: str, source: str | None = None) -> Screenplay:
    """Parse Fountain 1.1 text into a Screenplay (see the module docstring for the rules). Never raises on any str."""
    lines = _clean_lines(text)
    title, i = _title_page(lines)
    n = len(lines)
    scenes: list[Scene] = []
    heading: tuple[str | None, str | None, int] = (None, None, 0)
    elements: list[Element] = []

    def end_scene():
        h, num, line = heading
        if h is not None or elements:
            scenes.append(Scene(h, num, line if h is not None else elements[0].line, tuple(elements)))

    while i < n:
        raw, no = lines[i]
        if _blank(raw):
            i += 1
            continue
        kind = _start_kind(raw, lines[i + 1][0] if i + 1 < n else None)
        s = raw.strip()
        if kind == "heading":
            end_scene()
            h, num = _heading(s)
            heading, elements = (h, num, no), []
            i += 1
        elif kind == "dialogue":
            d, i = _dialogue(lines, i, n)
            if d.dual:
                prev = elements[-1] if elements else None
                if isinstance(prev, Dialogue) and not prev.dual:
                    elements[-1] = _with_dual(prev)
                else:
                    d = _with_dual(d, False)
            elements.append(d)
        elif kind == "transition":
            elements.append(Transition(s[1:].strip() if s.startswith(">") else s, no))
            i += 1
        elif kind == "section":
            m = _SECTION_RE.fullmatch(s)
            elements.append(Section(m.group(2).strip(), len(m.group(1)), no))
            i += 1
        elif kind == "synopsis":
            elements.append(Synopsis(s[1:].strip(), no))
            i += 1
        elif kind == "page_break":
            elements.append(PageBreak(no))
            i += 1
        else:
            i = _action_block(lines, i, n, elements)
    end_scene()
    return Screenplay(title_page=title, scenes=tuple(scenes), source=source)


def _with_dual(d: Dialogue, dual: bool = True) -> Dialogue:
    return Dialogue(d.character, d.cue, d.extension, d.parts, d.line, dual)


# --------------------------------------------------------------------------------------------------- names, speech


def canonical_name(cue: str) -> str:
    """`@McClane (V.O.) (CONT’D) ^` → `MCCLANE`: forcing `@`, dual `^`, parentheticals and CONT'D removed,
    apostrophes unified, whitespace folded, upper-cased (a cue's case is typography, not identity)."""
    s = cue.strip()
    if s.startswith("@"):
        s = s[1:]
    if s.endswith("^"):
        s = s[:-1]
    cut = s.find("(")
    if cut >= 0:
        s = s[:cut]
    s = _WS_RE.sub(" ", s.translate(_APOSTROPHES)).strip()
    s = re.sub(r"\s+CONT['.]?D?\.?$", "", s, flags=re.IGNORECASE) if "CONT" in s.upper() else s
    return s.upper()


def speech_text(text: str) -> str:
    """Text ready to speak: notes and `{{macros}}` removed, emphasis markers (`*`, `**`, `***`, `_`) dropped,
    escapes (`\\*`) resolved, line breaks folded and whitespace collapsed."""
    if "[[" in text:
        text = _NOTE_INLINE_RE.sub(" ", text)
    if "{{" in text:
        text = _MACRO_RE.sub(" ", text)
    text = _EMPHASIS_RE.sub(lambda m: m.group(1) or "", text)
    return _WS_RE.sub(" ", text).strip()


# --------------------------------------------------------------------------------------------------- emitting


def emit_fountain(screenplay: Screenplay) -> str:
    """Fountain text for a Screenplay such that parse_fountain(emit_fountain(s)) equals s except for source line
    numbers (`Screenplay.structure()`). Elements are separated by blank lines and forced
    (`!`, `@`, `.`, `>`) only where the plain form would parse as something else."""
    out: list[str] = []
    tp = screenplay.title_page.entries
    if tp:
        for key, value in tp:
            vals = value.split("\n") if value else []
            if len(vals) == 1:
                out.append(f"{key}: {vals[0]}")
            else:
                out.append(f"{key}:")
                out.extend(f"    {v}" for v in vals)
        out.append("")
    else:
        out.append("")  # a leading blank line: the body can never be mistaken for a title page
    for scene in screenplay.scenes:
        if scene.heading is not None:
            h = scene.heading if _HEADING_RE.match(scene.heading) else "." + scene.heading
            out.append(h + (f" #{scene.number}#" if scene.number else ""))
            out.append("")
        open_pair = False
        for e in scene.elements:
            caret = False
            if isinstance(e, Dialogue) and e.dual:
                caret, open_pair = open_pair, not open_pair
            else:
                open_pair = False
            out.extend(_emit_element(e, caret))
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _emit_element(e: Element, caret: bool = False) -> list[str]:
    if isinstance(e, Dialogue):
        return _emit_dialogue(e, caret)
    if isinstance(e, Action):
        if e.centered:
            return [f"> {t} <" if t else "><" for t in e.text.split("\n")]
        return _emit_action(e.text.split("\n"))
    if isinstance(e, Lyrics):
        return ["~" + t for t in e.text.split("\n")]
    if isinstance(e, Transition):
        plain = e.text and _start_kind(e.text, None) == "transition" and not e.text.startswith(">")
        return [e.text if plain else ">" + e.text]
    if isinstance(e, Section):
        return ["#" * e.level + " " + e.text]
    if isinstance(e, Synopsis):
        return ["= " + e.text]
    if isinstance(e, PageBreak):
        return ["==="]
    raise TypeError(f"unknown element {e!r}")


def _emit_action(lines: list[str]) -> list[str]:
    out = []
    for k, t in enumerate(lines):
        if not t.strip():
            out.append("  ")
            continue
        s = t.strip()
        if k == 0:
            nxt = lines[1] if len(lines) > 1 else None
            force = t[0] == "!" or _start_kind(t, "  " if nxt == "" else nxt) != "action"
            force = force or s[0] in "~>"
        else:
            force = t[0] == "!" or s[0] == "~" or _is_centered(s)
        out.append("!" + t if force else t)
    return out


def _emit_dialogue(d: Dialogue, caret: bool) -> list[str]:
    cue = d.cue
    plain = _start_kind(cue, "x") == "dialogue" and not cue.startswith("@")
    head = (cue if plain else "@" + cue) + (" ^" if caret else "")
    out = [head]
    for p in d.parts:
        if p.kind == "parenthetical":
            out.extend(p.text.split("\n"))
        elif p.kind == "lyric":
            out.extend("~" + t for t in p.text.split("\n"))
        else:
            out.extend(t if t else "  " for t in p.text.split("\n"))
    return out
