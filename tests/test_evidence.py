"""collect_evidence: lines, parentheticals, scenes, word-boundary mentions and introductions per canonical name."""

from __future__ import annotations

from pipeline.evidence import Evidence, _introduction, canonical_name, collect_evidence
from pipeline.fountain import parse_fountain, read_script

SCRIPT = """\
INT. DINER - NIGHT

ELENA (30s), sharp-eyed and tired, wipes the counter. AL, a burly cook, is ALWAYS late. Al waves.

AL
(gruff)
Order *up*!

ELENA (V.O.)
I knew then.

EXT. LOT - LATER

Nobody here. It's always quiet. al is lowercase and not him.

ELENA (CONT’D)
Still here.

INT. KITCHEN - LATER

ELENA
(to Al)
Go home.
"""


def evidence():
    return collect_evidence(parse_fountain(SCRIPT))


def test_canonical_names_merge_extensions_and_contd():
    ev = evidence()
    assert list(ev) == ["AL", "ELENA"]
    assert ev["ELENA"].cues == ("ELENA (V.O.)", "ELENA (CONT’D)", "ELENA")
    assert ev["ELENA"].extensions == ("V.O.", None, None)


def test_lines_are_speech_text_and_parentheticals_kept():
    ev = evidence()
    assert ev["AL"].lines == ("Order up!",)
    assert ev["AL"].parentheticals == ("(gruff)",)
    assert ev["ELENA"].lines == ("I knew then.", "Still here.", "Go home.")
    assert ev["ELENA"].line_count == 3


def test_mentions_are_word_boundary_and_case_aware():
    ev = evidence()
    al = ev["AL"].action_mentions
    assert len(al) == 1 and "AL, a burly cook" in al[0]  # not "ALWAYS", not "always", not lowercase "al"
    assert all("Nobody here" not in m for m in al)


def test_scenes_once_per_scene_spoken_or_mentioned():
    ev = evidence()
    assert ev["ELENA"].scenes == ("INT. DINER - NIGHT", "EXT. LOT - LATER", "INT. KITCHEN - LATER")
    assert ev["AL"].scenes == ("INT. DINER - NIGHT",)


def test_introduction_with_age_and_descriptors():
    intro = evidence()["ELENA"].introduction
    assert intro.line == 3
    assert intro.text == "ELENA (30s), sharp-eyed and tired, wipes the counter."
    assert intro.age_note == "30s"
    assert intro.descriptors == ("sharp-eyed", "tired")
    al = evidence()["AL"].introduction
    assert al.age_note is None and al.descriptors == ("a burly cook",)


def test_introduction_forms():
    i = _introduction("ELENA", "ELENA (30s), sharp-eyed and tired.", 1)
    assert (i.age_note, i.descriptors) == ("30s", ("sharp-eyed", "tired"))
    text = "CYBER BOSS, 40 (or any age), an ageless, faceless, voiceless, world-roaming cloud"
    i = _introduction("CYBER BOSS", text, 1)
    assert i.age_note == "40" and i.descriptors[:3] == ("an ageless", "faceless", "voiceless")
    i = _introduction("RAY", "We meet RAY, mid-thirties, a gentle giant.", 1)
    assert (i.age_note, i.descriptors) == ("mid-thirties", ("a gentle giant",))
    i = _introduction("MARGARET", "Wind howls. MARGARET HALE (70s), a weathered, stubborn old keeper, polishes.", 4)
    assert i.text.startswith("MARGARET HALE") and i.age_note == "70s"
    assert i.descriptors == ("a weathered", "stubborn old keeper")
    assert _introduction("AL", "It is ALWAYS late.", 1) is None
    assert _introduction("AL", "Al is here.", 1) is None  # an introduction is in capitals


def test_apostrophe_names_match_both_forms():
    sp = parse_fountain("WILL’S DATE enters, nervous.\n\nWILL'S DATE\nHi.\n\nWILL’S DATE\nBye.\n")
    ev = collect_evidence(sp)
    assert list(ev) == ["WILL'S DATE"]
    assert ev["WILL'S DATE"].introduction.text.startswith("WILL'S DATE enters")
    assert canonical_name("WILL’S DATE (O.S.)") == "WILL'S DATE"


def test_sample_script_evidence(sample_script):
    ev = collect_evidence(read_script(sample_script))
    assert set(ev) == {"MARGARET", "TOMAS", "JUNE", "OTTO"}
    m = ev["MARGARET"]
    assert m.introduction.age_note == "70s" and "stubborn old keeper with a dry wit" in m.introduction.descriptors
    assert "V.O." in m.extensions
    assert ev["JUNE"].introduction.age_note == "40s"
    assert ev["OTTO"].introduction.descriptors == ("a boy of ten",)
    assert isinstance(m, Evidence) and len(m.digest()) >= 16
    assert m.digest() == collect_evidence(read_script(sample_script))["MARGARET"].digest()


def test_no_dialogue_no_evidence():
    assert collect_evidence(parse_fountain("Just ACTION here.\n")) == {}
