"""Spoken forms: what a narrator says for the parts of a screenplay that are not dialogue.

A table read speaks the scene headings and the action; the best-known screenplay speech rules never speak
parentheticals, character extensions or `(CONT'D)` (pipeline.render speaks only a dialogue's lines and lyrics).

- headings: `INT. LIGHTHOUSE KITCHEN - CONTINUOUS #2#` → "Interior. Lighthouse kitchen. Continuous." The prefix
  (INT, EXT, EST, INT./EXT., I/E …) is spelled out, scene numbers are dropped, the location and the time of day are
  read as sentences; a forced heading (`.OPENING TITLES`) is read the same way without a prefix.
- action: notes, macros and emphasis markers are gone (pipeline.fountain.speech_text); ALL-CAPS words are read as
  words (a character introduced in capitals, a sound such as BANG) while real acronyms (FBI, TV, DNA, NYPD …) stay
  in capitals so they are read as letters; age notes such as `(70s)` or `(40's M)` are dropped.
- transitions and centered text: `CUT TO:` → "Cut to." (the narration mode decides whether they are read at all).

`narration(scene, mode)` lists what the narrator says in one scene, in script order, as NarrationItems.
Everything here is pure string work; nothing is rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal

from .fountain import speech_text
from .screenplay import Action, Dialogue, Scene, Transition

NarrationMode = Literal["action", "headings", "none", "all"]
NARRATION_MODES: tuple[str, ...] = ("action", "headings", "none", "all")
NarrationKind = Literal["heading", "action", "transition", "centered"]
MODE_KINDS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "headings": frozenset({"heading"}),
    "action": frozenset({"heading", "action"}),
    "all": frozenset({"heading", "action", "transition", "centered"}),
}
NARRATOR = "NARRATOR"

# Heading prefixes, longest first; the value is what is said.
_PREFIXES: tuple[tuple[str, str], ...] = (
    (r"INT\.?\s*/\s*EXT", "Interior, exterior"),
    (r"EXT\.?\s*/\s*INT", "Exterior, interior"),
    (r"I\.?\s*/\s*E", "Interior, exterior"),
    (r"E\.?\s*/\s*I", "Exterior, interior"),
    (r"INTERIOR", "Interior"),
    (r"EXTERIOR", "Exterior"),
    (r"ESTABLISHING", "Establishing"),
    (r"INT", "Interior"),
    (r"EXT", "Exterior"),
    (r"EST", "Establishing"),
)
_PREFIX_RE = re.compile(r"^\s*(?:" + "|".join(f"(?P<p{i}>{p})" for i, (p, _) in enumerate(_PREFIXES))
                        + r")(?:\.|\b)\s*(?:-+\s*)?", re.IGNORECASE)
_SCENE_NUMBER_RE = re.compile(r"\s*#[^#\s]*#\s*$")
# separators between heading parts: " - ", "--", " – ", ", ", " / "
_HEADING_SPLIT_RE = re.compile(r"\s*(?:\s-+\s|--+|\s[–—]\s|[–—]|,\s|\s/\s)\s*")

# Acronyms read as letters even though they contain vowels (a word with no vowel at all is an acronym anyway).
ACRONYMS = frozenset("""
    AI AKA ATM ATF BBC CEO CFO CIA CNN CPR CSI DEA DIY DNA DOA DUI EMT EPA ER ETA EU FAQ FBI GI GPA HBO HIV HQ HR
    IBM ICU ID IOU IQ IRA IRS IT IV KGB LAPD MBA MI6 MIA MRI NBA NBC NFL NRA NSA NYC NYPD NYU OB OK OR PA PE PI PIN POV
    POW PR PTA RAF RIP RPG RSVP RV SOS SUV TNT TV UCLA UFO UK UN USA USB USC UV VIP VP WTF
""".split()) - frozenset({"IT", "OR", "PIN"})  # ordinary words when shouted
# Sounds and interjections with no vowels that are words, not letters.
_NO_VOWEL_WORDS = frozenset("BRR BRRR GRR GRRR HMM HMMM HMPH MM MMM MMMM PFFT PSST PST SHH SHHH SSH TSK ZZZ ZZZZ".split())
_WORD = r"[^\W\d_]+(?:['’\-][^\W\d_]+)*"
_CAPS_RUN_RE = re.compile(rf"(?<![\w'’]){_WORD}(?:[ \t]+{_WORD})*(?![\w'’])")
_INTRO_AFTER_RE = re.compile(r"^\s*(?:\(\s*(?:early|mid|late|about)?[\s-]*\d|,\s*(?:age\s*)?\d)", re.IGNORECASE)
_DECADE_RE = re.compile(r"(\d)['’]S\b")
# A heading's last words that are a time of day, when written without a separator ("INT HOUSE DAY").
_TIMES = ("MOMENTS LATER", "MAGIC HOUR", "SAME TIME", "PRE-DAWN", "CONTINUOUS", "AFTERNOON", "MORNING", "EVENING",
          "SUNRISE", "SUNSET", "MIDNIGHT", "LATER", "NIGHT", "DAWN", "DUSK", "NOON", "DAY")
_AGE_NOTE_RE = re.compile(
    r"\s*\((?:(?:early|mid|late|about|around|age[ds]?)[\s-]*)?\d{1,3}\s*(?:['’]?s)?"
    r"(?:\s*(?:-|to|or)\s*\d{1,3}\s*(?:['’]?s)?)?(?:\s*,?\s*[MF])?\)",
    re.IGNORECASE)
_TRANSITION_RE = re.compile(
    r"^(?:(?:SMASH |MATCH |JUMP |TIME |HARD |QUICK |SLOW )?(?:CUT|DISSOLVE|FADE|WIPE|IRIS|BURN|SMASH|RIPPLE)"
    r"(?: (?:TO|IN|OUT|UP))?(?: (?:BLACK|WHITE|GREEN|RED))?|FADE IN|FADE OUT|INTERCUT(?: WITH)?|BACK TO(?: [A-Z ]+)?"
    r"|THE END|OVER BLACK|END CREDITS)[:.!]?$")


@dataclass(frozen=True)
class NarrationItem:
    """One thing the narrator says: what kind of element it reads, the spoken text, and the element's source line.
    `after` is how many dialogue blocks of the scene come before it (its place in script order)."""

    kind: NarrationKind
    text: str
    line: int
    after: int = 0


# ------------------------------------------------------------------------------------------------ headings


def sentence(text: str) -> str:
    """"LIGHTHOUSE KITCHEN" → "Lighthouse kitchen": a capitalised sentence (acronyms kept), ending in a full stop."""
    text = " ".join(text.split()).strip(" .,;:-–—")
    if not text:
        return ""
    text = spoken_caps(text, sentence_start=True)
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def spoken_heading(heading: str) -> str:
    """What the narrator says for a scene heading (see the module docstring)."""
    h = _SCENE_NUMBER_RE.sub("", heading.strip())
    h = h[1:] if h.startswith(".") and not h.startswith("..") else h  # a forced heading's `.`
    h = h.replace("’", "'")
    parts: list[str] = []
    m = _PREFIX_RE.match(h)
    if m and (m.end() < len(h) or m.group(0).strip()):
        said = next(_PREFIXES[i][1] for i in range(len(_PREFIXES)) if m.group(f"p{i}"))
        parts.append(said + ".")
        h = h[m.end():]
    # brackets and parentheses hold more parts: "NIGHT (1977)", "[CONTINUOUS]"
    h = re.sub(r"[\[\]()]", " - ", h)
    for piece in _split_time(_HEADING_SPLIT_RE.split(h)):
        said = sentence(piece)
        if said and said != ".":
            parts.append(said)
    return " ".join(parts)


def _split_time(pieces: list[str]) -> list[str]:
    """"HOUSE DAY" (no separator before the time of day) → "HOUSE", "DAY"."""
    if len(pieces) != 1:
        return pieces
    last = pieces[-1].strip()
    for t in _TIMES:
        if last.upper().endswith(" " + t) and len(last) > len(t) + 1:
            return [*pieces[:-1], last[: -len(t)], last[-len(t):]]
    return pieces


# ------------------------------------------------------------------------------------------------ action


def is_acronym(word: str) -> bool:
    """A capitalised word read as letters: a known acronym, or a word without any vowel (NYPD, CCTV), except
    sounds such as HMM or SHH."""
    w = word.replace("'", "").replace("’", "").replace(".", "")
    if w in ACRONYMS:
        return True
    if w in _NO_VOWEL_WORDS or len(w) < 2 or "-" in w:
        return False
    return not re.search(r"[AEIOUY]", w)


def _word_case(word: str, title: bool) -> str:
    if title:
        return re.sub(r"[A-Za-z]+", lambda m: m.group(0).capitalize(), word.lower())
    return word.lower()


def spoken_caps(text: str, names: Iterable[str] = (), sentence_start: bool = True) -> str:
    """ALL-CAPS words as words: other words lower-cased (capitalised again at a sentence start), acronyms kept, and
    names title-cased — a run of capitals holding a name of `names` (the script's characters), or introduced with
    an age (`MARGARET HALE (70s)`, `CYBER BOB, 40,`). Mixed-case words are left alone."""
    text = _DECADE_RE.sub(r"\1s", text)
    name_words = {w for n in names for w in re.findall(_WORD, n.upper())}
    runs: list[list[re.Match]] = []  # consecutive ALL-CAPS words separated by blanks only
    for m in re.finditer(_WORD, text):
        if not (m.group(0).isupper() and len(m.group(0)) > 1 or m.group(0) in ("A", "I") and runs):
            continue
        prev = runs[-1][-1] if runs else None
        if prev is not None and not text[prev.end():m.start()].strip(" \t"):
            runs[-1].append(m)
        else:
            runs.append([m])
    out, pos = [], 0
    for run in runs:
        if all(len(m.group(0)) == 1 for m in run):
            continue
        title = any(m.group(0) in name_words for m in run) or bool(_INTRO_AFTER_RE.match(text[run[-1].end():]))
        before = text[:run[0].start()].rstrip(" \"'“‘(")
        start = (not before and sentence_start) or before[-1:] in (".", "!", "?", ":")
        for m in run:
            word = m.group(0)
            said = word if is_acronym(word) or len(word) == 1 else _word_case(word, title)
            if start:
                said = said[0].upper() + said[1:]
            start = False
            out.append(text[pos:m.start()] + said)
            pos = m.end()
    return "".join(out) + text[pos:]


def drop_age_notes(text: str) -> str:
    """`MARGARET HALE (70s), a keeper` → `MARGARET HALE, a keeper`; also (30), (mid-40s), (40's M), (20s-30s)."""
    return re.sub(r"\s+([,.;:!?])", r"\1", _AGE_NOTE_RE.sub("", text))


def spoken_action(text: str, names: Iterable[str] = ()) -> str:
    """What the narrator says for an action paragraph (see the module docstring); "" when nothing is left."""
    said = drop_age_notes(spoken_caps(speech_text(text), names))
    said = " ".join(said.split())
    if said and said[0].isalpha():
        said = said[0].upper() + said[1:]
    return said


def spoken_transition(text: str) -> str:
    """`CUT TO:` → "Cut to."; `> THE END <` → "The end."."""
    t = speech_text(text).strip("<> ").rstrip(":").strip()
    return sentence(t) if t else ""


def is_transition_like(text: str) -> bool:
    """An action paragraph that is really a transition (`FADE IN:`, `**FADE OUT.**`, `CUT TO BLACK`)."""
    return bool(_TRANSITION_RE.match(" ".join(speech_text(text).upper().split())))


# ------------------------------------------------------------------------------------------------ a scene


def narration(scene: Scene, mode: str, names: Iterable[str] = ()) -> list[NarrationItem]:
    """What the narrator says in `scene` under `mode`, in script order (see MODE_KINDS)."""
    if mode not in MODE_KINDS:
        raise ValueError(f"narration mode {mode!r}: use one of {', '.join(NARRATION_MODES)}")
    kinds = MODE_KINDS[mode]
    names = tuple(names)
    items: list[NarrationItem] = []
    if scene.heading and "heading" in kinds:
        said = spoken_heading(scene.heading)
        if said:
            items.append(NarrationItem("heading", said, scene.line, 0))
    dialogues = 0
    for e in scene.elements:
        if isinstance(e, Dialogue):
            dialogues += 1
            continue
        kind, said = _element(e, names)
        if kind is not None and kind in kinds and said:
            items.append(NarrationItem(kind, said, e.line, dialogues))
    return items


def _element(e, names: tuple[str, ...]) -> tuple[str | None, str]:
    if isinstance(e, Transition):
        return "transition", spoken_transition(e.text)
    if isinstance(e, Action):
        if is_transition_like(e.text):
            return "transition", spoken_transition(e.text)
        if e.centered:
            return "centered", sentence(spoken_caps(speech_text(e.text), names))
        return "action", spoken_action(e.text, names)
    return None, ""  # lyrics outside dialogue, sections, synopses and page breaks are never spoken
