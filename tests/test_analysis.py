"""Heuristic character analysis, overrides and profile keys."""

from __future__ import annotations

import json

import pytest

from pipeline.analysis.heuristic import HeuristicAnalyzer, parse_age_note
from pipeline.analysis.profile import CharacterProfile, apply_overrides, profile_key
from pipeline.evidence import Evidence, Introduction

A = HeuristicAnalyzer()

KITCHEN = ("A narrow kitchen. TOMAS REYES (30s), an earnest young engineer from the coast authority, shakes rain "
           "from his coat. Behind him, JUNE HALE (40s), Margaret's sharp, impatient daughter, carries a box of files.")


def ev(name, intro=None, note=None, descriptors=(), actions=(), parens=(), lines=("Hello.",), extensions=(),
       cues=None, scenes=("INT. ROOM - DAY",)):
    return Evidence(
        name=name, cues=cues or (name,), lines=tuple(lines), parentheticals=tuple(parens),
        action_mentions=tuple(actions), scenes=tuple(scenes),
        introduction=Introduction(intro, 3, note, tuple(descriptors)) if intro else None,
        extensions=tuple(extensions),
    )


# name, evidence, expected gender, expected age range, traits that must be present
CASES = [
    ("keeper", ev("MARGARET", "MARGARET HALE (70s), a weathered, stubborn old keeper with a dry wit, polishes the "
                              "great lens by hand.", "70s"),
     "female", (70, 79), ("weathered", "stubborn", "dry wit")),
    ("engineer", ev("TOMAS", KITCHEN, "30s"), "male", (30, 39), ("earnest",)),
    ("daughter", ev("JUNE", KITCHEN, "40s", actions=("June puts a hand on her mother's shoulder.",)),
     "female", (40, 49), ("sharp", "impatient")),
    ("boy of ten", ev("OTTO", "A small boy's voice crackles from an old radio: it is OTTO, a boy of ten, calling "
                              "from a fishing boat."), "male", (9, 11), ()),
    ("pronoun, mid-forties", ev("DR. KIM", "DR. KIM (mid-forties) enters. She drops her pen.", "mid-forties",
                                parens=("nervously", "nervously", "beat")), "female", (44, 46), ("nervous",)),
    ("name words", ev("OLD MAN"), "male", (65, 85), ()),
    ("teenage girl", ev("SKYE", "SKYE, a sullen teenage girl, slouches in."), "female", (13, 19), ("sullen",)),
    ("years old", ev("REX", "REX, a cheerful 8-year-old, runs past. He trips."), "male", (7, 9), ("cheerful",)),
    ("in his fifties", ev("VALE", "VALE, a gruff sailor in his fifties, coils rope."), "male", (50, 59), ("gruff",)),
    ("note with gender letter", ev("BERNARD", "Over the sounds of a steam room, BERNARD (40's M) can be heard.",
                                   "40's M"), "male", (40, 49), ()),
    ("appositive list", ev("BOB", "CYBER BOB, 40, a white man, a mild, goofy, fairly daft pawn of a soul, strolls "
                                  "through the park.", "40", cues=("BOB", "CYBER BOB")),
     "male", (38, 42), ("mild", "goofy", "daft")),
    ("someone else's age", ev("JOE", "JOE sits on the floor with his 7 year-old son, MATTHEW."), "male", None, ()),
    ("nonbinary", ev("ASH", "ASH (20s), a wry nonbinary barista, wipes the counter.", "20s"), "nonbinary", (20, 29),
     ("wry",)),
]


@pytest.mark.parametrize("label,evidence,gender,age,traits", CASES, ids=[c[0] for c in CASES])
def test_heuristic_profiles(label, evidence, gender, age, traits):
    p = A.analyze(evidence)
    assert p.gender == gender
    assert p.age_range == age
    for t in traits:
        assert t in p.traits
    assert p.summary and p.summary.count(".") <= 3
    assert p.analyzer == A.id
    # every field records how sure it is and why
    assert set(p.field_evidence) == {"gender", "age_range", "traits", "summary"}
    if gender != "unknown":
        assert p.confidence("gender") > 0 and p.field_evidence["gender"].evidence
    if age is not None:
        assert p.confidence("age_range") > 0 and p.field_evidence["age_range"].evidence


def test_predicates_and_other_characters_descriptions_are_not_traits():
    will = A.analyze(ev("WILL", "WILL BLOOM, AGE 3, listens wide-eyed as his father EDWARD BLOOM, 40's and handsome, "
                                "tells the story.", "AGE 3",
                        descriptors=("AGE 3", "listens wide-eyed as his father EDWARD BLOOM", "40's", "handsome")))
    assert will.age_range == (3, 3) and "handsome" not in will.traits
    bob = A.analyze(next(c[1] for c in CASES if c[0] == "appositive list"))
    assert bob.summary.startswith("A white man, a mild, goofy")  # the age is not part of the summary
    assert "strolls" not in bob.summary


def test_pronoun_of_another_character_is_not_counted():
    # "his coat" belongs to TOMAS; JUNE's own appositive says daughter; the window stops at the next name.
    tomas = A.analyze(ev("TOMAS", KITCHEN, "30s"))
    assert any("his" in e for e in tomas.field_evidence["gender"].evidence)
    assert not any("daughter" in e for e in tomas.field_evidence["gender"].evidence)
    june = A.analyze(ev("JUNE", KITCHEN, "40s"))
    assert not any("'his'" in e or "'him'" in e for e in june.field_evidence["gender"].evidence)


def test_text_outweighs_given_name_and_nothing_gives_unknown():
    p = A.analyze(ev("JORDAN", "JORDAN (30s) leans back. He grins.", "30s"))
    assert p.gender == "male"
    assert A.analyze(ev("ZORP")).gender == "unknown"
    assert A.analyze(ev("ZORP")).confidence("gender") == 0.0
    weak = A.analyze(ev("MARGARET"))  # the given name alone: a guess, and it says so
    assert weak.gender == "female" and weak.confidence("gender") < 0.6


def test_recurring_parentheticals_become_traits_and_single_ones_do_not():
    p = A.analyze(ev("BO", parens=("angrily", "angrily", "quietly", "beat", "beat", "to Sam", "to Sam")))
    assert "angry" in p.traits
    assert "quiet" not in p.traits and "beat" not in p.traits and "to sam" not in p.traits
    assert any("angrily" in e for e in p.field_evidence["traits"].evidence)


def test_summary_is_one_or_two_sentences():
    p = A.analyze(ev("MARGARET", "MARGARET HALE (70s), a weathered, stubborn old keeper with a dry wit, polishes.",
                     "70s", extensions=("V.O.", "V.O.", None), lines=("a", "b", "c")))
    assert p.summary == "A weathered, stubborn old keeper with a dry wit. Often heard in voice-over."
    bare = A.analyze(ev("GUARD", lines=("Halt.", "Who goes there?"), scenes=("EXT. GATE", "INT. HALL")))
    assert bare.summary == "Guard, a character with 2 lines in 2 scenes."


@pytest.mark.parametrize("note,expected", [
    ("30s", (30, 39)), ("30's", (30, 39)), ("early 40s", (40, 43)), ("mid-thirties", (34, 36)),
    ("late 20s", (27, 29)), ("late teens", (17, 19)), ("teens", (13, 19)), ("25", (23, 27)), ("20-25", (20, 25)),
    ("ten", (9, 11)), ("forty-two", (40, 44)), ("about 60", (58, 62)), ("V.O.", None), ("beat", None),
])
def test_parse_age_note(note, expected):
    assert parse_age_note(note) == expected


def test_profile_json_round_trip_and_validation():
    p = A.analyze(CASES[0][1])
    data = json.loads(json.dumps(p.to_json()))
    assert CharacterProfile.from_json(data) == p
    with pytest.raises(ValueError):
        CharacterProfile(name="X", age_range=(50, 20))
    with pytest.raises(ValueError):
        CharacterProfile(name="X", gender="robot")


def test_apply_overrides():
    p = A.analyze(CASES[0][1])
    q = apply_overrides(p, {"gender": "nonbinary", "age_range": (60, 65), "traits": ("calm",)})
    assert (q.gender, q.age_range, q.traits) == ("nonbinary", (60, 65), ("calm",))
    assert q.summary == p.summary
    assert q.field_evidence["gender"].confidence == 1.0
    assert q.field_evidence["gender"].evidence == ("cast file",)
    assert q.field_evidence["summary"] == p.field_evidence["summary"]
    assert apply_overrides(p, {}) == p
    with pytest.raises(ValueError, match="seed"):
        apply_overrides(p, {"seed": 3})
    with pytest.raises(ValueError):
        apply_overrides(p, {"gender": "robot"})


def test_profile_key_tracks_its_inputs():
    e = CASES[0][1]
    k = profile_key(e, "heuristic-1", {})
    assert k == profile_key(e, "heuristic-1", None) and k.startswith("profile-")
    assert k != profile_key(e, "heuristic-2", {})
    assert k != profile_key(e, "heuristic-1", {"gender": "male"})
    assert profile_key(e, "h", {"traits": ("a",)}) == profile_key(e, "h", {"traits": ["a"]})
    other = ev("MARGARET", e.introduction.text, "60s")
    assert k != profile_key(other, "heuristic-1", {})


def _collect():
    from pipeline.evidence import collect_evidence
    from pipeline.fountain import read_script

    return read_script, collect_evidence


def test_sample_script_profiles(sample_script):
    read_script, collect_evidence = _collect()
    evidences = collect_evidence(read_script(sample_script))
    profiles = {n: A.analyze(e) for n, e in evidences.items()}
    assert set(profiles) == {"MARGARET", "TOMAS", "JUNE", "OTTO"}
    assert profiles["MARGARET"].gender == "female" and profiles["MARGARET"].age_range == (70, 79)
    assert profiles["TOMAS"].gender == "male" and profiles["TOMAS"].age_range == (30, 39)
    assert profiles["JUNE"].gender == "female" and profiles["JUNE"].age_range == (40, 49)
    assert profiles["OTTO"].gender == "male"
    assert "stubborn" in profiles["MARGARET"].traits


@pytest.mark.corpus
def test_every_corpus_character_gets_a_profile(corpus_dir):
    read_script, collect_evidence = _collect()
    scripts = sorted((corpus_dir / "fountain").glob("*.fountain"))
    assert scripts
    total = 0
    for path in scripts:
        evidences = collect_evidence(read_script(path))
        for name, evidence in evidences.items():
            p = A.analyze(evidence)
            assert p.name == name and p.summary, (path.name, name)
            json.dumps(p.to_json())
            total += 1
    assert total > 20


def test_name_matching_is_whole_word_and_never_lower_case():
    # "june" the month and "The" of "THE DEALER" are not the character; pronouns after them do not count
    june = A.analyze(ev("JUNE", actions=("It was late june and he was tired.",)))
    assert june.field_evidence["gender"].evidence == ("'JUNE' is a common female given name",)
    dealer = A.analyze(ev("THE DEALER", cues=("THE DEALER", "DEALER"),
                          actions=("The cards fall. She laughs.", "The Dealer smiles. He deals again.")))
    assert dealer.gender == "male"
