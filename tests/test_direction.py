"""Parentheticals → instruct / pause / effect / note."""

from __future__ import annotations

import pytest

from pipeline.direction import ParentheticalDirection, direct_dialogue, read_parenthetical
from pipeline.screenplay import Dialogue, DialoguePart


@pytest.mark.parametrize("text, instruct", [
    ("(whispering)", "Whisper."),
    ("(whispers)", "Whisper."),
    ("(angry)", "Speak angrily."),
    ("(angrily)", "Speak angrily."),
    ("(shouting)", "Shout."),
    ("(muttering)", "Mutter under your breath."),
    ("(quietly)", "Speak softly and quietly."),
    ("(smiling)", "Speak warmly, with a smile in your voice."),
    ("(through tears)", "Speak tearfully, close to crying."),
    ("(sarcastic)", "Speak with dry sarcasm."),
    ("(nervously)", "Speak nervously, hesitating."),
])
def test_delivery_instructs(text, instruct):
    cue = read_parenthetical(text)
    assert cue.instructs == (instruct,)
    assert cue.pause == 0 and cue.effects == ()


@pytest.mark.parametrize("text, beats", [
    ("(beat)", 1.0), ("(pause)", 1.0), ("(a beat)", 1.0), ("(a pause)", 1.0), ("(long pause)", 2.0),
    ("(a moment)", 1.0), ("(short beat)", 0.5),
])
def test_pauses(text, beats):
    assert read_parenthetical(text) == ParentheticalDirection(pause=beats)


def test_stage_business_is_effect_and_note():
    cue = read_parenthetical("(on the radio)")
    assert cue.effects == ("radio",)
    assert cue.instructs == () and cue.pause == 0
    assert cue.notes == ("on the radio",)
    assert read_parenthetical("(into phone)").effects == ("phone",)


def test_unknown_kept_as_note_only():
    assert read_parenthetical("(to June)") == ParentheticalDirection(notes=("to june",))
    assert read_parenthetical("(cont'd)") == ParentheticalDirection()
    assert read_parenthetical("()") == ParentheticalDirection()


def test_compound_clause():
    cue = read_parenthetical("(beat, then quietly)")
    assert cue.pause == 1.0
    assert cue.instructs == ("Speak softly and quietly.",)


def test_direct_dialogue_carries_instruct_and_places_pause():
    d = Dialogue(character="MARGARET", cue="MARGARET", extension=None, line=1, parts=(
        DialoguePart("parenthetical", "(whispering)", 2),
        DialoguePart("line", "First.", 3),
        DialoguePart("parenthetical", "(beat)", 4),
        DialoguePart("line", "Second.", 5),
        DialoguePart("parenthetical", "(shouting)", 6),
        DialoguePart("line", "Third!", 7),
    ))
    first, second, third = direct_dialogue(d, beat=0.8)
    assert first.instruct == "Whisper." and first.pause_before is None
    assert second.instruct == "Whisper." and second.pause_before == pytest.approx(0.8)
    assert third.instruct == "Shout." and third.pause_before is None


def test_effect_applies_to_whole_block():
    d = Dialogue(character="OTTO", cue="OTTO", extension="O.S.", line=1, parts=(
        DialoguePart("line", "Hello?", 2),
        DialoguePart("parenthetical", "(on the radio)", 3),
        DialoguePart("line", "Over.", 4),
    ))
    a, b = direct_dialogue(d)
    assert a.effects == b.effects == ("radio",)
    assert a.instruct is None and b.notes == ("on the radio",)
