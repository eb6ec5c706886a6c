"""Cast files: parsing, path resolution, and errors that name the file, the character and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.castfile import CastEntry, load_cast_file
from pipeline.errors import CastFileError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "pipeline" / "configs" / "cast.example.toml"
SAMPLE_CHARACTERS = ("MARGARET", "TOMAS", "JUNE", "OTTO")


def write(tmp_path: Path, text: str, name: str = "cast.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_cast_file_loads_for_the_sample_script():
    cast = load_cast_file(EXAMPLE, SAMPLE_CHARACTERS)
    m = cast.entry("MARGARET")
    assert m.age_range == (70, 78) and m.audition == 1 and m.description.startswith("A low, weathered")
    assert m.overrides() == {"age_range": (70, 78), "traits": ("weathered", "dry", "unhurried")}
    assert cast.entry("TOMAS").seed == 4242
    assert cast.entry("OTTO").extra is False and cast.entry("OTTO").gender == "male"
    assert (cast.extras.max_lines, cast.extras.pool) == (1, 3)


def test_unnamed_character_gets_an_empty_entry(tmp_path):
    cast = load_cast_file(write(tmp_path, ""), SAMPLE_CHARACTERS)
    e = cast.entry("JUNE")
    assert e == CastEntry(name="JUNE", source=cast.path)
    assert e.overrides() == {} and not e.pins_voice


def test_names_match_case_insensitively_and_lock_paths_resolve_from_the_file(tmp_path):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "m.lock.safetensors").write_bytes(b"x")
    path = write(tmp_path, '[characters.Margaret]\nlock = "voices/m.lock.safetensors"\n')
    cast = load_cast_file(path, SAMPLE_CHARACTERS)
    assert cast.entry("MARGARET").lock == (tmp_path / "voices" / "m.lock.safetensors").resolve()


def test_names_fold_like_the_scripts_cues(tmp_path):
    """A curly apostrophe or doubled space in the cast file names the same character the parser canonicalised."""
    path = write(tmp_path, '[characters."o’brien"]\nseed = 7\n[characters."MARY  ANN"]\nseed = 8\n')
    cast = load_cast_file(path, ("O'BRIEN", "MARY ANN"))
    assert cast.entry("O'BRIEN").seed == 7 and cast.entry("MARY ANN").seed == 8


def test_yaml_is_accepted(tmp_path):
    path = write(tmp_path, "characters:\n  JUNE:\n    preset: vivian\n    instruct: Speak briskly.\n"
                           "    traits: sharp, tired\nextras:\n  pool: 0\n", "cast.yaml")
    cast = load_cast_file(path, SAMPLE_CHARACTERS)
    assert cast.entry("JUNE").preset == "vivian" and cast.entry("JUNE").instruct == "Speak briskly."
    assert cast.entry("JUNE").traits == ("sharp", "tired")
    assert cast.extras.pool == 0 and cast.extras.max_lines is None


BAD = [
    ("unknown character", "[characters.MARGRET]\nseed = 1\n", ["MARGRET", "Did you mean 'MARGARET'"]),
    ("bad seed type", '[characters.TOMAS]\nseed = "abc"\n', ["[characters.TOMAS] seed", "'abc'"]),
    ("negative seed", "[characters.TOMAS]\nseed = -1\n", ["[characters.TOMAS] seed"]),
    ("missing lock", '[characters.JUNE]\nlock = "nope/june.lock.safetensors"\n',
     ["[characters.JUNE] lock", "not found", "nope"]),
    ("unknown key", "[characters.OTTO]\nvoice = 3\n", ["[characters.OTTO] voice", "unknown key"]),
    ("misspelt key", "[characters.OTTO]\nauditon = 1\n", ["[characters.OTTO] auditon", "Did you mean 'audition'"]),
    ("bad gender", '[characters.OTTO]\ngender = "boy"\n', ["[characters.OTTO] gender", "male | female"]),
    ("bad age range", "[characters.OTTO]\nage_range = [12, 9]\n", ["[characters.OTTO] age_range"]),
    ("bool audition", "[characters.OTTO]\naudition = true\n", ["[characters.OTTO] audition"]),
    ("instruct alone", '[characters.OTTO]\ninstruct = "Shout."\n', ["[characters.OTTO] instruct", "preset"]),
    ("bad extra", '[characters.OTTO]\nextra = "yes"\n', ["[characters.OTTO] extra", "true or false"]),
    ("unknown section", "[charcters.OTTO]\nseed = 1\n", ["charcters", "Did you mean 'characters'"]),
    ("bad extras key", "[extras]\nmax = 2\n", ["[extras] max", "unknown key"]),
    ("bad extras value", "[extras]\npool = -2\n", ["[extras] pool"]),
    ("not toml", "[characters.OTTO\n", ["not valid TOML"]),
]


@pytest.mark.parametrize("label,text,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_cast_files_name_file_character_and_key(tmp_path, label, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(CastFileError) as info:
        load_cast_file(path, SAMPLE_CHARACTERS)
    message = str(info.value)
    assert str(path.resolve()) in message
    for needle in needles:
        assert needle in message


def test_lock_and_preset_together_is_an_error(tmp_path):
    (tmp_path / "m.vox").write_bytes(b"x")
    path = write(tmp_path, '[characters.MARGARET]\nlock = "m.vox"\npreset = "vivian"\n')
    with pytest.raises(CastFileError, match=r"\[characters.MARGARET\] preset"):
        load_cast_file(path, SAMPLE_CHARACTERS)


def test_missing_cast_file(tmp_path):
    with pytest.raises(CastFileError, match="not found"):
        load_cast_file(tmp_path / "nope.toml", SAMPLE_CHARACTERS)


def test_example_cast_file_narrator_and_lexicon():
    cast = load_cast_file(EXAMPLE, SAMPLE_CHARACTERS)
    assert cast.entry("NARRATOR").description.startswith("A calm, clear") and cast.narrator.narrator
    assert cast.entry("NARRATOR").where("seed").endswith("[narrator] seed")
    assert cast.lexicon.apply("Tomas waits.") == "Toe-mahs waits."
