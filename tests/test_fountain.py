"""Unit tests for the Fountain 1.1 parser: one test (or a few) per construct in issue 2, plus bad input and the CLI."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner

from pipeline.errors import ScriptError
from pipeline.fountain import emit_fountain, parse_cue, parse_fountain, read_script, speech_text
from pipeline.evidence import canonical_name
from pipeline.screenplay import Action, Dialogue, Lyrics, PageBreak, Section, Synopsis, Transition


def elements(text):
    """All elements of all scenes, flattened (headings as ("heading", text, number))."""
    out = []
    for s in parse_fountain(text).scenes:
        if s.heading is not None:
            out.append(("heading", s.heading, s.number))
        out.extend(s.elements)
    return out


def only(text):
    (e,) = elements(text)
    return e


# ------------------------------------------------------------------------------------------- title page


def test_title_page_keys_case_insensitive_and_multiline_values():
    sp = parse_fountain("title: My Film\nCredit: Written by\nAuthor:\n    Ann One\n\tBob Two\n\nINT. ROOM - DAY\n")
    assert sp.title_page.get("Title") == "My Film"
    assert sp.title_page.get("AUTHOR") == "Ann One\nBob Two"
    assert [k for k, _ in sp.title_page.entries] == ["title", "Credit", "Author"]
    assert sp.scenes[0].heading == "INT. ROOM - DAY"


def test_title_page_only_at_top():
    sp = parse_fountain("Some action.\n\nTitle: Not a title\n")
    assert sp.title_page.entries == ()
    assert [e.text for e in sp.scenes[0].elements] == ["Some action.", "Title: Not a title"]


def test_lone_transition_on_line_one_is_not_a_title_page():
    sp = parse_fountain("CUT TO:\n\nINT. BEDROOM\n")
    assert sp.title_page.entries == ()
    assert sp.scenes[0].elements == (Transition("CUT TO:", 1),)


def test_note_before_title_page_is_removed():
    sp = parse_fountain("[[A note.]]\nTitle: X\n\nHello.\n")
    assert sp.title_page.get("title") == "X"


# ------------------------------------------------------------------------------------------- scene headings


@pytest.mark.parametrize(
    "line",
    ["INT. HOUSE - DAY", "EXT HOUSE DAY", "EST. CITY", "INT./EXT. CAR", "INT/EXT CAR", "I/E. HOUSE", "I/E HOUSE",
     "int. house - day", "EXT/INT. SHACK", "I./E. HOUSE"],
)
def test_scene_heading_prefixes(line):
    sp = parse_fountain(f"\n{line}\n\nAction.\n")
    assert sp.scenes[0].heading == line


@pytest.mark.parametrize("line", ["ESTABLISHING", "INTERIOR", "... not a heading", "..nope", "EXTRA FOOTAGE"])
def test_not_scene_headings(line):
    assert all(s.heading is None for s in parse_fountain(f"{line}\n\nAction.\n").scenes)


def test_heading_needs_blank_before_not_after():
    sp = parse_fountain("INT. HOUSE - DAY\nEXT. HOUSE - DAY\nJohn runs.\n\nHe said INT. FOO\nINT. BAR\n")
    assert [s.heading for s in sp.scenes] == ["INT. HOUSE - DAY", "EXT. HOUSE - DAY"]
    assert [e.text for e in sp.scenes[1].elements] == ["John runs.", "He said INT. FOO\nINT. BAR"]


def test_forced_heading_and_scene_numbers():
    sp = parse_fountain(".KITCHEN\n\nINT. HOUSE - DAY #1A#\n\n.WNĘTRZE. #I-1-A#\n")
    assert [(s.heading, s.number) for s in sp.scenes] == [("KITCHEN", None), ("INT. HOUSE - DAY", "1A"),
                                                          ("WNĘTRZE.", "I-1-A")]


def test_content_before_first_heading_is_a_leading_scene():
    sp = parse_fountain("FADE IN:\n\nINT. HOUSE - DAY\n\nHello.\n")
    assert sp.scenes[0].heading is None and sp.scenes[0].elements == (Action("FADE IN:", 1),)
    assert sp.scenes[1].line == 3 and sp.scenes[1].elements[0].line == 5


# ------------------------------------------------------------------------------------------- character cues


@pytest.mark.parametrize(
    "cue, name, ext",
    [
        ("R2D2", "R2D2", None),
        ("ASSISTANT #2", "ASSISTANT #2", None),
        ("WILL’S DATE", "WILL'S DATE", None),
        ("WILL'S DATE  ", "WILL'S DATE", None),  # trailing spaces allowed
        ("MOM (O. S.)", "MOM", "O. S."),
        ("HANS (on the radio)", "HANS", "on the radio"),
        ("EDWARD (V.O.)(CONT’D)", "EDWARD", "V.O."),
        ("STEEL (v.o.) (cont'd)", "STEEL", "v.o."),
        ("EVE (cont'd)", "EVE", None),
        ("@McCLANE", "MCCLANE", None),
        ("   DR. BENNET", "DR. BENNET", None),
        ("3CPO", "3CPO", None),  # spec: at least one letter
    ],
)
def test_character_cues(cue, name, ext):
    d = only(f"\n{cue}\nA line.\n")
    assert isinstance(d, Dialogue)
    assert (d.character, d.extension) == (name, ext)
    assert d.parts[0].text == "A line."


@pytest.mark.parametrize(
    "line",
    [
        "23 (O.S.)",  # no letter
        "Han (O. S.)",  # lowercase outside the parenthetical
        "CYBER BOSS, 40 (or any age), an ageless,",  # text after the parenthetical: the spec's cue shape fails
        "CUT TO:",  # a name ending in ':' is not a speaker
    ],
)
def test_not_character_cues(line):
    assert not any(isinstance(e, Dialogue) for e in elements(f"\n{line}\nnext line of text\n"))


def test_cue_needs_text_below_and_blank_above():
    assert not any(isinstance(e, Dialogue) for e in elements("BOB\n\nThis should not work."))
    assert not any(isinstance(e, Dialogue) for e in elements("Action line.\nBOB\nNot dialogue."))


def test_spec_trap_all_caps_action_needs_bang():
    # fountain.io: "SCANNING THE AISLES..." over a line *is* a character cue; the spec's fix is a leading "!"
    assert isinstance(elements("\nSCANNING THE AISLES...\nWhere is he?\n")[0], Dialogue)
    assert elements("\n!SCANNING THE AISLES...\nWhere is he?\n") == [Action("SCANNING THE AISLES...\nWhere is he?", 2)]


def test_forced_character_allows_lowercase():
    d = only("@Han (O.S.)\nThis should.")
    assert (d.character, d.cue, d.extension) == ("HAN", "Han (O.S.)", "O.S.")


def test_parse_cue_parts():
    c = parse_cue("@McCabe (V.O.) (CONT'D) ^")
    assert (c.cue, c.name, c.extension, c.dual, c.forced) == ("McCabe (V.O.) (CONT'D)", "McCabe", "V.O.", True, True)


def test_canonical_name():
    assert canonical_name("EDWARD (V.O.)(CONT’D)") == "EDWARD"
    assert canonical_name("@Will’s   Date ^") == "WILL'S DATE"
    assert canonical_name("STEEL CONT'D") == "STEEL"


# ------------------------------------------------------------------------------------------- dialogue body


def test_parentheticals_interleaved_and_multiline():
    d = only("STEEL\nThey're coming!\n(pause)\nNo, everybody!\n(starting the\nengine)\nGo.")
    assert [(p.kind, p.text) for p in d.parts] == [
        ("line", "They're coming!"), ("parenthetical", "(pause)"), ("line", "No, everybody!"),
        ("parenthetical", "(starting the\nengine)"), ("line", "Go."),
    ]
    assert [p.line for p in d.parts] == [2, 3, 4, 5, 7]
    assert d.parentheticals == ("(pause)", "(starting the\nengine)")


def test_inline_paren_is_a_line():
    d = only("BOB\n(beat) Go away.")
    assert [(p.kind, p.text) for p in d.parts] == [("line", "(beat) Go away.")]


def test_two_space_line_keeps_dialogue_together():
    d = only("DEALER\nDealer gets a seven.\n  \nHit or stand sir?")
    assert [(p.kind, p.text) for p in d.parts] == [("line", "Dealer gets a seven.\n\nHit or stand sir?")]


def test_lyrics_inside_dialogue_and_in_action():
    d = only("SINGER\n~Row, row, row\n~your boat\nShe stops.")
    assert [(p.kind, p.text) for p in d.parts] == [("lyric", "Row, row, row\nyour boat"), ("line", "She stops.")]
    assert d.spoken == d.parts
    assert only("~Willy Wonka!") == Lyrics("Willy Wonka!", 1)


def test_dual_dialogue_marks_both():
    els = elements("BRICK\nScrew retirement.\n\nSTEEL ^\nScrew retirement.\n\nGUY^\nHello!\n")
    assert [(e.character, e.dual) for e in els] == [("BRICK", True), ("STEEL", True), ("GUY", False)]


def test_caret_not_last_is_not_dual():
    d = only("AND ^ (Dual)\nShouldn't work")
    assert not d.dual


# ------------------------------------------------------------------------------------------- other elements


def test_transitions():
    assert elements("\nCUT TO:\n\nx\n")[0] == Transition("CUT TO:", 2)
    assert elements(">fade to black\n")[0] == Transition("fade to black", 1)
    assert elements("NOT A TRANSITION TO:  \n\nx")[0] == Action("NOT A TRANSITION TO:", 1)
    assert elements("\nCUT TO:\nMore text\n")[0] == Action("CUT TO:\nMore text", 2)


def test_centered_vs_forced_transition():
    assert elements("> THE END <")[0] == Action("THE END", 1, centered=True)
    assert elements(">No space<")[0] == Action("No space", 1, centered=True)
    assert elements("> Not centered")[0] == Transition("Not centered", 1)
    els = elements("Text.\n> Centered <\nMore.")
    assert els == [Action("Text.", 1), Action("Centered", 2, centered=True), Action("More.", 3)]


def test_forced_action_and_indentation_kept():
    assert only("!EXT. ACTION. FORCED.") == Action("EXT. ACTION. FORCED.", 1)
    assert only("!BANG\nBOOM\nPOW") == Action("BANG\nBOOM\nPOW", 1)
    assert only("    Four spaces") == Action("    Four spaces", 1)
    assert only("\tTabbed") == Action("    Tabbed", 1)


def test_sections_synopses_page_breaks():
    els = elements("# Act 1\n= The set up.\n\n## Seq\n\n===\n\n=========\n")
    assert els == [Section("Act 1", 1, 1), Synopsis("The set up.", 2), Section("Seq", 2, 4), PageBreak(6),
                   PageBreak(8)]


def test_notes_removed_inline_multiline_and_between_dialogue_lines():
    assert only("Before [[a note]]After [[two]]too") == Action("Before After too", 1)
    assert only("Before2 [[multi\nline\nnote]]After2") == Action("Before2 After2", 1)
    d = only("STEEL\nLine one.\n[[a note]]\nLine two.")
    assert d.parts[0].text == "Line one.\nLine two."
    # a truly blank line inside [[ ]] makes it not a note
    assert [e.text for e in elements("Not [[\na note\n\nat all\n]]")] == ["Not [[\na note", "at all\n]]"]


def test_boneyard_one_line_multiline_nested():
    assert only("A /* gone */line.") == Action("A line.", 1)
    assert only("/* one-line boneyard */\nStill here.") == Action("Still here.", 2)
    sp = elements("CUT TO:\n/*\nINT. GARAGE - DAY\n\nBRICK\nHi.\n*/\nEXT. MANSION - DAY\n\nA man.")
    assert sp == [Transition("CUT TO:", 1), ("heading", "EXT. MANSION - DAY", None), Action("A man.", 10)]
    assert only("Keep /* outer /* inner */ still outer */this.") == Action("Keep this.", 1)
    assert only("Unclosed /* stays") == Action("Unclosed /* stays", 1)


def test_emphasis_kept_in_model_and_removed_for_speech():
    d = only("STEEL\nIt's *very* **bold** ***both*** _under_ \\*literal\\* [[note]]\nfolded  line.")
    assert "**bold**" in d.parts[0].text
    assert speech_text(d.parts[0].text) == "It's very bold both under *literal* folded line."
    assert speech_text("**\\*9765\\***") == "*9765*"
    assert speech_text("{{PAGENUMBER: 101}} Go.") == "Go."


def test_apostrophes_and_unicode_survive():
    d = only("JOSÉ\nDon’t — café.")
    assert (d.character, d.parts[0].text) == ("JOSÉ", "Don’t — café.")


def test_bom_crlf_and_line_numbers():
    sp = parse_fountain("\ufeffINT. A - DAY\r\n\r\nBOB\r\nHi.\r\n")
    d = sp.scenes[0].elements[0]
    assert sp.scenes[0].heading == "INT. A - DAY" and d.line == 3 and d.parts[0].line == 4


def test_empty_and_title_only():
    assert parse_fountain("").scenes == ()
    assert parse_fountain("\n\n   \n").scenes == ()
    assert parse_fountain("Title: X\nAuthor: Y\n").scenes == ()


# ------------------------------------------------------------------------------------------- round trip, json


@pytest.mark.parametrize(
    "text",
    [
        "!INT. FORCED ACTION\n\n!!bang\n\n@lower\nx\n\n.forced heading\n\nCUT TO:  \n\n>forced to\n\n~lyric\n",
        "A\nx\n\nB ^\ny\n\nC ^\nz\n\nD\nw\n\nE ^\nv\n",
        "Title: X\n\nJOHN\n  \n(beat)\n~la\nhi\n  \n",
    ],
)
def test_emit_round_trip(text):
    a = parse_fountain(text)
    b = parse_fountain(emit_fountain(a))
    assert a.structure() == b.structure()


def test_json_export_shape(sample_script):
    data = read_script(sample_script).to_json()
    json.dumps(data)
    assert set(data) == {"title_page", "scenes"}
    d = next(e for s in data["scenes"] for e in s["elements"] if e["type"] == "dialogue")
    assert set(d) == {"type", "line", "character", "cue", "extension", "dual", "parts"}
    assert set(d["parts"][0]) == {"kind", "text", "line"}


# ------------------------------------------------------------------------------------------- our sample


def test_sample_script_structure(sample_script):
    sp = read_script(sample_script)
    assert sp.source == str(sample_script)
    assert sp.title_page.get("title") == "The Lighthouse Keeper's Last Night"
    assert [s.number for s in sp.headed_scenes] == ["1", "2", "3", "4"]
    assert sp.scenes[0].heading is None  # FADE IN: before the first heading
    assert sp.characters() == ["MARGARET", "TOMAS", "JUNE", "OTTO"]
    dual = [d for _, d in sp.dialogues() if d.dual]
    assert [d.character for d in dual] == ["JUNE", "MARGARET"]
    vo = [d for _, d in sp.dialogues() if d.extension == "V.O."]
    assert [d.character for d in vo] == ["MARGARET", "MARGARET"]


# ------------------------------------------------------------------------------------------- read_script, bad input


def test_read_missing_file(tmp_path):
    with pytest.raises(ScriptError, match="no such file"):
        read_script(tmp_path / "missing.fountain")


def test_read_binary_file(tmp_path):
    p = tmp_path / "x.fountain"
    p.write_bytes(b"INT. A\x00\x01\x02")
    with pytest.raises(ScriptError, match="x.fountain.*binary"):
        read_script(p)


def test_read_huge_single_line(tmp_path):
    p = tmp_path / "blob.fountain"
    p.write_text("A" * 100_000)
    with pytest.raises(ScriptError, match="blob.fountain.*single line"):
        read_script(p)


def test_read_non_utf8_warns_with_offset(tmp_path):
    p = tmp_path / "latin.fountain"
    p.write_bytes(b"\xef\xbb\xbfJOS\xc9\nHola.\n")
    with pytest.warns(UnicodeWarning, match=r"latin.fountain.*offset 6"):
        sp = read_script(p)
    d = sp.scenes[0].elements[0]
    assert d.character == "JOS\ufffd" and d.parts[0].text == "Hola."


def test_read_utf8_no_warning(tmp_path):
    p = tmp_path / "ok.fountain"
    p.write_text("\ufeffBOB\nHi.\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_script(p).characters() == ["BOB"]


def test_cli_parse(sample_script, tmp_path):
    from flows.cli.parse import command

    runner = CliRunner()
    out = runner.invoke(command, [str(sample_script)])
    assert out.exit_code == 0, out.output
    assert "INT. LAMP ROOM - LATER" in out.output and "OTTO" in out.output
    out = runner.invoke(command, [str(sample_script), "--json"])
    assert json.loads(out.output)["scenes"][1]["heading"] == "EXT. LIGHTHOUSE GALLERY - NIGHT"
    out = runner.invoke(command, [str(sample_script), "--characters"])
    assert "MARGARET" in out.output and "LAMP ROOM" not in out.output
    out = runner.invoke(command, [str(sample_script), "--evidence"])
    assert "70s" in out.output
    empty = tmp_path / "empty.fountain"
    empty.write_text("")
    out = runner.invoke(command, [str(empty)])
    assert out.exit_code == 0 and "no scenes" in out.output
