"""Casting slips from the corpus: a cue that names gender or age wins over weak evidence; a girl or boy noun that
names a role, or that the script calls attractive, is an adult."""

from __future__ import annotations

import pytest

from pipeline.analysis.heuristic import HeuristicAnalyzer
from pipeline.evidence import Evidence, Introduction

A = HeuristicAnalyzer()


def ev(name, intro=None, actions=(), note=None):
    return Evidence(name=name, cues=(name,), lines=("Hello.",), parentheticals=(), action_mentions=tuple(actions),
                    scenes=("INT. ROOM - DAY",), introduction=Introduction(intro, 3, note, ()) if intro else None)


@pytest.mark.parametrize("name, actions, gender, age", [
    ("MALE VOICE", ("She hears the phone. MALE VOICE answers before she can.",), "male", None),
    ("FEMALE VOICE", ("He listens. FEMALE VOICE comes over the tannoy, and he frowns.",), "female", None),
    ("OLD WOMAN", ("OLD WOMAN shuffles past him; he steps aside.",), "female", (65, 85)),
    ("MAN #2", ("MAN #2 turns to her and she laughs.",), "male", None),
    ("GIRL", ("GIRL hides behind the door.",), "female", (6, 14)),
    ("BOY", ("BOY kicks the ball to her.",), "male", (6, 14)),
    ("LITTLE GIRL", (), "female", (6, 12)),
    ("YOUNG WOMAN", (), "female", (18, 30)),
])
def test_a_cue_naming_gender_or_age_wins_over_weak_evidence(name, actions, gender, age):
    p = A.analyze(ev(name, actions=actions))
    assert p.gender == gender, p.field_evidence["gender"]
    assert p.age_range == age, p.field_evidence["age_range"]


def test_young_with_an_adult_noun_is_an_adult():
    art = A.analyze(ev("ART GIRL", actions=("the only person in the place is a attractive young ART GIRL who seems "
                                            "to be questioning it.",)))
    assert art.gender == "female" and art.age_range == (18, 30)
    looks = A.analyze(ev("GIRL", actions=("An attractive young GIRL leans on the bar.",)))
    assert looks.age_range == (18, 30)
    delivery = A.analyze(ev("DELIVERY BOY"))
    assert delivery.gender == "male" and delivery.age_range[0] >= 18


def test_an_explicit_age_note_still_beats_the_cue():
    p = A.analyze(ev("YOUNG EDWARD", "YOUNG EDWARD (10) lies in bed.", note="10"))
    assert p.age_range == (9, 11)


@pytest.mark.corpus
@pytest.mark.parametrize("script, name, gender, adult", [
    ("the-last-birthday-card", "MALE VOICE", "male", None),
    ("the-last-birthday-card", "ART GIRL", "female", True),
    ("the-last-birthday-card", "SOPHISTICATED WOMAN", "female", None),
    ("big-fish", "LITTLE GIRL", "female", False),
    ("big-fish", "TELLER WOMAN", "female", None),
    ("sp-dual-dialogue", "GIRL", "female", False),
])
def test_corpus_characters(corpus_dir, script, name, gender, adult):
    from pipeline.evidence import collect_evidence
    from pipeline.fountain import read_script

    evidences = collect_evidence(read_script(corpus_dir / "fountain" / f"{script}.fountain"))
    p = A.analyze(evidences[name])
    assert p.gender == gender
    if adult is not None:
        assert p.age_range is not None and (p.age_range[0] >= 18) is adult, p.age_range
