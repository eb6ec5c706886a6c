"""A narrated table read through the render flow: per narration mode on the sample script, mode switches that
re-render nothing already rendered, lexicon changes counted in the render report, a monologue in pieces with one cue,
and scenes that have narration but no dialogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from pipeline.config import load_settings
from pipeline.fountain import read_script
from pipeline.render import plan_line_jobs
from pipeline.screenplay import Action, Dialogue, Transition
from pipeline.spoken import spoken_action, spoken_heading, spoken_transition

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Counted by hand in data/sample.fountain: 4 scene headings; 7 action paragraphs; 2 transitions (FADE IN: before
# the first heading, FADE OUT. at the end); no centered text.
NARRATOR_LINES = {"none": 0, "headings": 4, "action": 4 + 7, "all": 4 + 7 + 2}


def render(script, out, engine="instant", mode=None, **kw):
    from flows.render import render_flow

    overrides = {"narration.mode": mode} if mode else None
    state = render_flow(str(script), str(out), engine=engine, overrides=overrides, return_state=True, **kw)
    assert state.is_completed(), state.message
    report = json.loads((Path(out) / "render-report.json").read_text())
    cues = json.loads(Path(report["outputs"]["cues"]).read_text())["lines"] if report["outputs"] else []
    return report, cues


def expected_sequence(script: Path, mode: str) -> list[tuple[str, str]]:
    """(speaker, text) of every cue in script order, written out from the screenplay element by element."""
    sp = read_script(script)
    names = sp.characters()
    kinds = {"none": set(), "headings": {"heading"}, "action": {"heading", "action"},
             "all": {"heading", "action", "transition"}}[mode]
    out: list[tuple[str, str]] = []
    for scene in sp.scenes:
        if scene.heading and "heading" in kinds:
            out.append(("NARRATOR", spoken_heading(scene.heading)))
        for e in scene.elements:
            if isinstance(e, Dialogue):
                out.extend((e.character, " ".join(p.text.replace("*", "").split())) for p in e.spoken)
            elif isinstance(e, Transition) or (isinstance(e, Action) and e.text.strip() in ("FADE IN:", "FADE OUT.")):
                if "transition" in kinds:
                    out.append(("NARRATOR", spoken_transition(e.text)))
            elif isinstance(e, Action) and "action" in kinds:
                out.append(("NARRATOR", spoken_action(e.text, names)))
    return out


def test_each_mode_narrates_what_it_covers_in_script_order(tmp_path, script):
    durations, seen_keys = {}, set()
    for mode in ("none", "headings", "action", "all", "none"):
        report, cues = render(script, tmp_path / f"out-{mode}", mode=mode)
        narrator = [c for c in cues if c["character"] == "NARRATOR"]
        assert len(narrator) == NARRATOR_LINES[mode] == report["narration"]["lines"], mode
        assert all(c["kind"] != "dialogue" for c in narrator) and all(c["kind"] == "dialogue" for c in cues
                                                                       if c["character"] != "NARRATOR")
        assert [(c["character"], c["text"]) for c in cues] == expected_sequence(script, mode), mode
        # switching the mode renders only narration never rendered before; nothing else
        settings = load_settings(overrides={"narration.mode": mode})
        voices = {n: v["lock_digest"] for n, v in report["cast"].items()}
        keys = {j.key for j in plan_line_jobs(read_script(script), voices, {"engine": "same"}, settings)}
        assert report["counts"]["rendered"] == len(keys - seen_keys), mode
        seen_keys |= keys
        durations[mode] = sf.info(report["outputs"]["master_wav"]).duration
        srt = Path(report["outputs"]["srt"]).read_text()
        assert ("NARRATOR: " in srt) == (mode != "none")
        labels = Path(report["outputs"]["labels"]).read_text()
        assert labels.count("\tNARRATOR: ") == NARRATOR_LINES[mode]
    assert durations["none"] < durations["headings"] < durations["action"] < durations["all"]


def test_narration_can_stay_out_of_the_subtitles(tmp_path, script):
    from flows.render import render_flow

    state = render_flow(str(script), str(tmp_path / "out"), engine="instant",
                        overrides={"narration.subtitles": False}, return_state=True)
    assert state.is_completed()
    report = json.loads((tmp_path / "out" / "render-report.json").read_text())
    assert "NARRATOR" not in Path(report["outputs"]["srt"]).read_text()
    assert "NARRATOR" not in Path(report["outputs"]["vtt"]).read_text()
    assert "NARRATOR: Exterior. Lighthouse gallery. Night." in Path(report["outputs"]["labels"]).read_text()
    assert "NARRATOR" in Path(report["outputs"]["cues"]).read_text()


def test_a_lexicon_change_re_renders_only_the_lines_with_the_word(tmp_path, script, fake):
    out = tmp_path / "out"
    first, _ = render(script, out, engine="fake")
    lines = first["counts"]["lines"]
    # "Tomas" is said in one dialogue line and three action paragraphs
    with_word = sum(1 for job in plan_line_jobs(read_script(script), {}, {}, load_settings())
                    if "tomas" in job.text.lower().replace(",", " ").replace(".", " ").split())
    assert with_word == 4
    lex = tmp_path / "names.toml"
    lex.write_text('Tomas = "Toe-mahs"\nSiobhan = "Shiv-awn"\n')
    report, cues = render(script, out, engine="fake", lexicon_file=str(lex))
    assert report["counts"] == {"lines": lines, "rendered": with_word, "reused": lines - with_word, "failed": 0}
    assert report["lexicon"]["unused"] == ["Siobhan"] and report["lexicon"]["entries"] == 2
    assert any("Tomas" in c["text"] for c in cues) and not any("Toe-mahs" in c["text"] for c in cues)
    lex.write_text('Tomas = "Toh-mass"\n')
    report, _ = render(script, out, engine="fake", lexicon_file=str(lex))
    assert report["counts"]["rendered"] == with_word and report["lexicon"]["unused"] == []
    assert any("Toh-mass" in t for t in fake.rendered_texts)


MONOLOGUE = " ".join(["Every night I climbed those stairs, and every night the light answered me."] * 8)


def test_monologue_renders_as_pieces_and_one_cue(tmp_path):
    script = tmp_path / "mono.fountain"
    script.write_text(f"INT. LAMP ROOM - NIGHT\n\nMARGARET\n{MONOLOGUE}\n\nTOMAS\nI see.\n")
    report, cues = render(script, tmp_path / "out", mode="none")
    assert [c["character"] for c in cues] == ["MARGARET", "TOMAS"]
    assert cues[0]["text"] == MONOLOGUE
    pieces = report["counts"]["lines"] - 1
    assert pieces >= 4 and report["counts"]["rendered"] == pieces + 1


def test_a_scene_with_narration_but_no_dialogue_renders(tmp_path):
    script = tmp_path / "quiet.fountain"
    script.write_text("INT. HALL - NIGHT\n\nRain on the windows. Nobody speaks.\n\nINT. KITCHEN - DAY\n\nANNA\nHi.\n")
    report, cues = render(script, tmp_path / "out")
    assert [s["heading"] for s in report["scenes"]] == ["INT. HALL - NIGHT", "INT. KITCHEN - DAY"]
    assert [c["text"] for c in cues][:2] == ["Interior. Hall. Night.", "Rain on the windows. Nobody speaks."]
    report, _ = render(script, tmp_path / "out-none", mode="none")
    assert [s["heading"] for s in report["scenes"]] == ["INT. KITCHEN - DAY"]
