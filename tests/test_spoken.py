"""Spoken forms: real odd headings and action lines from ../shared/corpus/fountain, with expected strings written by
hand; then the narration a scene gets in each mode."""

from __future__ import annotations

from functools import lru_cache

import pytest

from pipeline.fountain import parse_fountain, read_script
from pipeline.screenplay import Action, Transition
from pipeline.spoken import (
    is_acronym, narration, spoken_action, spoken_caps, spoken_heading, spoken_transition,
)

# (corpus file, heading as parsed, what the narrator says)
HEADINGS = [
    ("ny-SceneHeaders.fountain", "INT HOUSE DAY", "Interior. House. Day."),
    ("ny-SceneHeaders.fountain", "INT/EXT. HOUSE - DAY", "Interior, exterior. House. Day."),
    ("ny-SceneHeaders.fountain", "INT./EXT. HOUSE - DAY", "Interior, exterior. House. Day."),
    ("ny-SceneHeaders.fountain", "I/E. HOUSE - DAY", "Interior, exterior. House. Day."),
    ("ny-SceneHeaders.fountain", "I./E. HOUSE - DAY", "Interior, exterior. House. Day."),
    ("ny-SceneHeaders.fountain", "I/E HOUSE DAY", "Interior, exterior. House. Day."),
    ("ny-SceneHeaders.fountain", "INT - HOUSE - DAY", "Interior. House. Day."),
    ("ny-SceneHeaders.fountain", "EST. HOUSE - DAY", "Establishing. House. Day."),
    ("ny-SceneHeaders.fountain", "EST HOUSE DAY", "Establishing. House. Day."),
    ("ny-SceneHeaders.fountain", "INT. HOUSE - DAY (1979)", "Interior. House. Day. 1979."),
    ("ny-SceneNumbers.fountain", "INT. HOUSE - DAY - FLASHBACK (1944)", "Interior. House. Day. Flashback. 1944."),
    ("ny-Simple.fountain", "ext. house - day", "Exterior. House. Day."),
    ("ny-Simple.fountain", "FORCED SCENE HEADING", "Forced scene heading."),
    ("cyber-bob-ep00001.fountain", "EXT. PARK--DAY", "Exterior. Park. Day."),
    ("big-fish.fountain", "EXT.  CAMPFIRE - NIGHT (1977)", "Exterior. Campfire. Night. 1977."),
    ("big-fish.fountain", "EXT.  BLOOM BACK YARD - NIGHT [CONTINUOUS]", "Exterior. Bloom back yard. Night. Continuous."),
    ("big-fish.fountain", "INT.  A.P. NEWSROOM (PARIS) - DAY", "Interior. A.P. Newsroom. Paris. Day."),
    ("big-fish.fountain", "EXT.  CEMETERY / GRAVESIDE - DAY", "Exterior. Cemetery. Graveside. Day."),
    ("big-fish.fountain", "INT.  HALF-DARK PARIS APARTMENT - (PRESENT) DAY",
     "Interior. Half-dark paris apartment. Present. Day."),
    ("the-last-birthday-card.fountain", "INT. HALLWAY, SCOTT'S APARTMENT BUILDING, A MOMENT LATER",
     "Interior. Hallway. Scott's apartment building. A moment later."),
    ("yntswyd.fountain", "EXT. HOUSE PRE-DAWN", "Exterior. House. Pre-dawn."),
    ("the-fat-man.fountain", "EXT. THE MARIN MANS - MAGIC HOUR", "Exterior. The marin mans. Magic hour."),
    ("aw-test.fountain", "WNĘTRZE. FORCED ELEMENTS - NIGHT", "Wnętrze. Forced elements. Night."),
]

# (corpus file, the start of an action paragraph as parsed, what the narrator says)
ACTIONS = [
    ("ny-ForcedElements.fountain", "BANG\nBANG\nBANG", "Bang bang bang"),
    ("brick-and-steel.fountain", "The SCREEN DOOR slides open and DICK STEEL",
     "The screen door slides open and Dick Steel, his former partner and fellow retiree, emerges with two cold "
     "beers."),
    ("fw-Formatted.fountain", "From what seems like only INCHES AWAY.",
     "From what seems like only inches away. Steel’s face fills the Leupold Mark 4 scope."),
    ("yntswyd.fountain", "Over the sounds of a steam room, BERNARD",
     "Over the sounds of a steam room, Bernard can be heard."),
    ("yntswyd.fountain", "From elsewhere in the house, we hear SYLVIA",
     "From elsewhere in the house, we hear Sylvia bellowing."),
    ("ny-Simple.fountain", "A MAN sits alone at his desk.", "A Man sits alone at his desk."),  # MAN speaks: a name
    ("the-last-birthday-card.fountain", "The MAILMAN is just leaving",
     "The mailman is just leaving, and Scott rushes over to his box."),
    ("yntswyd.fountain", "{{PAGENUMBER: 101}}", ""),
]

TRANSITIONS = [
    ("ny-Transitions.fountain", "CUT TO:", "Cut to."),
    ("ny-Transitions.fountain", "SMASH CUT TO:", "Smash cut to."),
    ("big-fish.fountain", "MATCH CUT TO:", "Match cut to."),
    ("my-living-memory.fountain", "DISSOLVE TO:", "Dissolve to."),
]


@lru_cache(maxsize=None)
def _script(path):
    return read_script(path)


def _elements(corpus_dir, name):
    sp = _script(corpus_dir / "fountain" / name)
    return sp, [e for s in sp.scenes for e in s.elements]


@pytest.mark.parametrize("name,heading,said", HEADINGS, ids=[h[1][:40] for h in HEADINGS])
def test_real_headings(corpus_dir, name, heading, said):
    sp, _ = _elements(corpus_dir, name)
    assert heading in [s.heading for s in sp.scenes], f"{heading!r} is not a heading of {name}"
    assert spoken_heading(heading) == said


@pytest.mark.parametrize("name,start,said", ACTIONS, ids=[a[1][:30] for a in ACTIONS])
def test_real_action(corpus_dir, name, start, said):
    sp, elements = _elements(corpus_dir, name)
    found = [e for e in elements if isinstance(e, Action) and e.text.startswith(start)]
    assert found, f"no action starting {start!r} in {name}"
    assert spoken_action(found[0].text, sp.characters()) == said


@pytest.mark.parametrize("name,text,said", TRANSITIONS)
def test_real_transitions(corpus_dir, name, text, said):
    _, elements = _elements(corpus_dir, name)
    assert any(isinstance(e, Transition) and e.text == text for e in elements)
    assert spoken_transition(text) == said


def test_corpus_count_of_cases():
    assert len(HEADINGS) + len(ACTIONS) >= 20


def test_heading_scene_number_dropped_and_forced_dot():
    assert spoken_heading("INT. LIGHTHOUSE KITCHEN - CONTINUOUS #2#") == "Interior. Lighthouse kitchen. Continuous."
    assert spoken_heading(".OPENING TITLES") == "Opening titles."
    assert spoken_heading("INT. FBI HEADQUARTERS - NIGHT") == "Interior. FBI headquarters. Night."


def test_caps_names_acronyms_and_age_notes():
    said = spoken_action("Wind howls. MARGARET HALE (70s), a keeper, hears a BANG. The NYPD and the FBI arrive. SHH.")
    assert said == "Wind howls. Margaret Hale, a keeper, hears a bang. The NYPD and the FBI arrive. Shh."
    assert spoken_action("Behind him, JUNE (mid-40s) and TOM (20s-30s) wait.") == "Behind him, June and Tom wait."
    assert spoken_caps("THE DOOR SLAMS.") == "The door slams."
    assert is_acronym("DNA") and is_acronym("CCTV") and not is_acronym("HMM") and not is_acronym("BANG")


SCRIPT = """\
FADE IN:

INT. KITCHEN - NIGHT #1#

ANNA (30s) enters.

ANNA
(whispering)
Hello?

A DOG barks.

CUT TO:

.FLASHBACK

> THE END <
"""


@pytest.mark.parametrize("mode,kinds", [
    ("none", []),
    ("headings", ["heading", "heading"]),
    ("action", ["heading", "action", "action", "heading"]),
    ("all", ["heading", "action", "action", "transition", "heading", "transition"]),
])
def test_narration_modes(mode, kinds):
    sp = parse_fountain(SCRIPT)
    items = [i for s in sp.scenes for i in narration(s, mode, sp.characters())]
    assert [i.kind for i in items] == (["transition"] if mode == "all" else []) + kinds
    texts = [i.text for i in items]
    if mode == "action":
        assert texts == ["Interior. Kitchen. Night.", "Anna enters.", "A dog barks.", "Flashback."]
        assert [i.after for i in items] == [0, 0, 1, 0]  # the dog barks after ANNA's speech
    assert not any("whisper" in t.lower() or "(" in t for t in texts)  # parentheticals are never spoken


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="action, headings, none, all"):
        narration(parse_fountain(SCRIPT).scenes[0], "loud")
