"""Pronunciation lexicon: whole-word respelling before keys, exact key changes, candidates, and bad files."""

from __future__ import annotations

import json

import pytest

from pipeline.castfile import load_cast_file
from pipeline.config import load_settings
from pipeline.errors import CastFileError
from pipeline.fountain import read_script
from pipeline.lexicon import Lexicon, LexiconError, candidates, load_lexicon, parse_lexicon
from pipeline.render import plan_line_jobs


def write(tmp_path, text, name="lexicon.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_whole_words_any_case_longest_first():
    lex = parse_lexicon({"Tomas": "Toe-mahs", "Hale": "Hail", "Mrs. Hale": "Missus Hail"}, "x")
    assert lex.apply("TOMAS met Tomas's aunt, Mrs. Hale, and Tomasz.") == \
        "Toe-mahs met Toe-mahs's aunt, Missus Hail, and Tomasz."
    assert lex.apply("Inhale.") == "Inhale."
    assert lex.hits(["Tomas and tomas", "Hale"]) == {"Tomas": 2, "Hale": 1, "Mrs. Hale": 0}
    assert lex.unused(["Tomas"]) == ["Hale", "Mrs. Hale"]


def test_file_entries_win_over_the_cast_files(tmp_path):
    cast = parse_lexicon({"Tomas": "Tom-ass", "Otto": "Ot-toe"}, "cast")
    merged = cast.merged(load_lexicon(write(tmp_path, 'tomas = "Toe-mahs"\n')))
    assert merged.apply("Tomas and Otto") == "Toe-mahs and Ot-toe"


@pytest.mark.parametrize("text,match", [
    ('Tomas = "Toe-mahs\n', r"lexicon.toml: not valid TOML"),
    ('Tomas = ""\n', r"lexicon.toml: Tomas: the respelling is empty"),
    ('Tomas = "   "\n', r"lexicon.toml: Tomas: the respelling is empty"),
    ("Tomas = 3\n", r"lexicon.toml: Tomas: expected a respelling string, got 3"),
    ("[Tomas]\nsay = \"x\"\n", r"lexicon.toml: Tomas: expected a respelling string, got a table"),
])
def test_bad_lexicon_file_names_the_file_and_key(tmp_path, text, match):
    with pytest.raises(LexiconError, match=match):
        load_lexicon(write(tmp_path, text))


def test_missing_lexicon_file(tmp_path):
    with pytest.raises(LexiconError, match="Lexicon file not found: .*nope.toml"):
        load_lexicon(tmp_path / "nope.toml")


def test_cast_file_lexicon_table(tmp_path):
    path = write(tmp_path, '[lexicon]\nTomas = "Toe-mahs"\n', "cast.toml")
    cast = load_cast_file(path, ["TOMAS"])
    assert cast.lexicon.apply("Tomas") == "Toe-mahs"
    with pytest.raises(CastFileError, match=r"cast.toml: \[lexicon\]: Tomas: expected a respelling string"):
        load_cast_file(write(tmp_path, "[lexicon]\nTomas = 1\n", "cast.toml"), ["TOMAS"])


def test_changing_one_entry_changes_exactly_the_keys_of_lines_with_the_word(sample_script):
    sp = read_script(sample_script)
    s = load_settings()
    voices = {c: c.lower() for c in [*sp.characters(), "NARRATOR"]}
    plain = plan_line_jobs(sp, voices, {"engine": "x"}, s)
    lex = plan_line_jobs(sp, voices, {"engine": "x"}, s, lexicon=Lexicon((("Tomas", "Toe-mahs"),)))
    lex2 = plan_line_jobs(sp, voices, {"engine": "x"}, s, lexicon=Lexicon((("Tomas", "Toh-mass"),)))
    with_word = [i for i, j in enumerate(plain) if "tomas" in j.text.lower()]
    assert len(with_word) >= 4  # dialogue and narration both
    assert any(plain[i].is_narration for i in with_word) and not all(plain[i].is_narration for i in with_word)
    for other in (lex, lex2):
        changed = [i for i, (a, b) in enumerate(zip(plain, other)) if a.key != b.key]
        assert changed == with_word
    assert all(lex[i].cue_text == plain[i].text and "Toe-mahs" in lex[i].text for i in with_word)


def test_candidates_on_the_sample(sample_script):
    sp = read_script(sample_script)
    found = {c.word: c for c in candidates(sp, Lexicon((("Tomas", "Toe-mahs"),)))}
    assert found["Tomas"].in_lexicon and not found["Margaret"].in_lexicon
    assert "character name" in found["Margaret"].reasons and found["Margaret"].count >= 3
    assert "Marigold" in found and "Reyes" in found  # capitalised mid-sentence
    assert "the" not in found and "Lighthouse" not in found


def test_lexicon_command(tmp_path, sample_script, capsys):
    from flows.cli import main

    lex = write(tmp_path, 'Tomas = "Toe-mahs"\n')
    main(["lexicon", str(sample_script), "--lexicon", str(lex), "--json"])
    rows = {r["word"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Tomas"]["in_lexicon"] and rows["Tomas"]["count"] >= 4 and not rows["June"]["in_lexicon"]
    with pytest.raises(SystemExit) as e:
        main(["lexicon", str(sample_script), "--lexicon", str(write(tmp_path, 'Tomas = ""\n', "bad.toml"))])
    assert e.value.code == 2
    assert "bad.toml: Tomas: the respelling is empty" in capsys.readouterr().err
