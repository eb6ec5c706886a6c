"""`readthrough render` / `readthrough cast` end to end through the CLI entry point (on the session Prefect server)."""

from __future__ import annotations

import json

import pytest

from flows.cli.render import parse_scene_list
from pipeline.errors import SettingsError

from helpers import run_cli as run


def test_parse_scene_list():
    assert parse_scene_list("1,3") == ["1", "3"]
    assert parse_scene_list("2-4, 7") == ["2", "3", "4", "7"]
    assert parse_scene_list("1A,2") == ["1A", "2"]
    assert parse_scene_list("") is None
    with pytest.raises(SettingsError, match="backwards"):
        parse_scene_list("4-2")


def test_help_has_examples(capsys):
    code, out, _ = run(["render", "--help"], capsys)
    assert code == 0 and "readthrough render data/sample.fountain -o out/" in out and "--scenes" in out
    assert "narrator" in out and "scene headings" in out and "--narration" in out and "--lexicon" in out
    assert "never spoken" in out  # parentheticals and extensions
    code, out, _ = run(["cast", "--help"], capsys)
    assert code == 0 and "--json" in out
    code, out, _ = run(["lexicon", "--help"], capsys)
    assert code == 0 and "readthrough lexicon data/sample.fountain" in out


def test_bad_lexicon_file_fails_before_rendering(tmp_path, script, capsys):
    bad = tmp_path / "names.toml"
    bad.write_text("Tomas = 3\n")
    code, _, err = run(["render", str(script), "-o", str(tmp_path / "o"), "--lexicon", str(bad)], capsys)
    assert code == 2 and "names.toml: Tomas: expected a respelling string, got 3" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_render_summary_rerun_and_failure_exit(tmp_path, script, fake, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(["render", str(script), "-o", str(out), "--engine", "fake"], capsys)
    assert code == 0, err
    assert stdout.startswith("Engine: fake — ")
    assert "Rendered 30, reused 0, failed 0 of 30 lines" in stdout and "wall time" in stdout
    assert (out / "render-report.json").is_file()

    code, stdout, err = run(["render", str(script), "-o", str(out), "--engine", "fake"], capsys)
    assert code == 0 and "Rendered 0, reused 30, failed 0" in stdout

    script.write_text(script.read_text().replace("Would it have answered him?", "Would it have answered Otto?"))
    fake.fail_text("answered Otto", "near-silent take after 3 retakes")
    code, stdout, err = run(["render", str(script), "-o", str(out), "--engine", "fake"], capsys)
    assert code == 1
    assert "failed 1 of 30" in stdout
    assert "FAILED scene 3, line 71 MARGARET" in err and "near-silent take after 3 retakes" in err
    report = json.loads((out / "render-report.json").read_text())
    assert report["status"] == "failed" and report["counts"]["failed"] == 1


@pytest.mark.usefixtures("prefect_harness")
def test_bad_scene_and_engine_are_user_errors(tmp_path, script, fake, capsys):
    code, _, err = run(["render", str(script), "-o", str(tmp_path / "o"), "--engine", "fake", "--scenes", "9"],
                       capsys)
    assert code == 2 and "no scene 9" in err
    code, _, err = run(["render", str(script), "-o", str(tmp_path / "o"), "--engine", "instnt"], capsys)
    assert code == 2 and "instant" in err  # did-you-mean


@pytest.mark.usefixtures("prefect_harness")
def test_cast_json_and_table(tmp_path, script, fake, capsys):
    code, stdout, err = run(["cast", str(script), "--engine", "fake", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(stdout)
    assert [r["name"] for r in rows] == ["MARGARET", "TOMAS", "JUNE", "OTTO", "NARRATOR"]
    for r in rows:
        for field in ("gender", "age_range", "traits", "summary", "description", "audition", "pick_reason",
                      "lock_path"):
            assert field in r
    assert "Engine: fake" in err
    code, stdout, _ = run(["cast", str(script), "--engine", "fake"], capsys)
    assert code == 0 and "MARGARET" in stdout and "NARRATOR" in stdout and "lock" in stdout


def test_cast_shows_delivery_variants_with_similarity(tmp_path, script, fake, capsys):
    settings = tmp_path / "settings.toml"
    settings.write_text("[delivery]\nmin_lines = 1\nmin_similarity = -1.0\nauditions = 2\n", encoding="utf-8")
    code, stdout, err = run(["cast", str(script), "--engine", "fake", "--settings", str(settings)], capsys)
    assert code == 0, err
    assert "Delivery variants (similarity to the neutral voice):" in stdout
    assert "MARGARET: muttering (1 line): audition" in stdout and "similarity" in stdout
    assert "TOMAS: soft (1 line)" in stdout
    code, stdout, err = run(["cast", str(script), "--engine", "fake", "--settings", str(settings), "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(stdout)}
    [soft] = rows["TOMAS"]["variants"]
    assert soft["delivery"] == "soft" and soft["status"] == "locked" and -1.0 <= soft["similarity"] <= 1.0


def test_cast_file_with_an_unknown_delivery_class_is_a_clear_error(tmp_path, script, fake, capsys):
    cast_file = tmp_path / "cast.toml"
    cast_file.write_text("[characters.MARGARET]\nvariants.bellowing = { audition = 1 }\n", encoding="utf-8")
    code, stdout, err = run(["cast", str(script), "--engine", "fake", "--cast", str(cast_file)], capsys)
    assert code != 0
    assert "[characters.MARGARET] variants.bellowing" in err and "not a delivery class" in err
    assert "shouting" in err and fake.design_calls == 0
