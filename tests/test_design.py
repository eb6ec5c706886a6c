"""Voice descriptions, auditions (files, keys, reuse) and distinctness picking with constructed x-vectors."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from fakes_casting import VectorEngine, one_hot
from pipeline.analysis.profile import CharacterProfile
from pipeline.audio import read_audio
from pipeline.config import CastingSettings
from pipeline.design import (
    MAX_DESCRIPTION_WORDS,
    PINNED_REASON,
    Audition,
    audition,
    audition_key,
    cosine_distance,
    describe,
    pick,
)

SAMPLE_TEXT = CastingSettings().sample_text


def profile(**kw) -> CharacterProfile:
    return CharacterProfile(name=kw.pop("name", "X"), **kw)


@pytest.mark.parametrize("kw,expected", [
    (dict(gender="female", age_range=(70, 79), traits=("weathered", "stubborn", "dry wit"),
          summary="A weathered, stubborn old keeper with a dry wit. Speaks 8 lines in 4 scenes."),
     "A weathered, stubborn elderly female voice with a dry wit, in her seventies. "
     "A weathered, stubborn old keeper with a dry wit."),
    (dict(gender="male", age_range=(30, 39), traits=("earnest",)), "An earnest young male voice, in his thirties."),
    (dict(gender="male", age_range=(9, 11), summary="A boy of ten, calling from a fishing boat"),
     "A boy's voice, about 10 years old. A boy of ten, calling from a fishing boat."),
    (dict(gender="female", age_range=(40, 49), traits=("sharp", "impatient")),
     "A sharp, impatient middle-aged female voice, in her forties."),
    (dict(gender="nonbinary", age_range=(25, 60)), "A middle-aged androgynous voice, aged 25 to 60."),
    (dict(gender="unknown", age_range=(15, 17)), "A teenage voice, about 16 years old."),
    (dict(), "A clear, natural voice."),
])
def test_describe_template(kw, expected):
    assert describe(profile(**kw)) == expected


def test_describe_stays_in_the_sweet_spot():
    long = profile(gender="female", age_range=(20, 29), traits=tuple(f"trait{i}" for i in range(8)),
                   summary="She " + "talks and talks " * 30 + ".")
    text = describe(long)
    assert len(text.split()) <= MAX_DESCRIPTION_WORDS
    assert text.count(".") <= 2
    assert "trait3" not in text  # at most three single-word traits


def test_sample_text_covers_varied_phonemes():
    letters = set(SAMPLE_TEXT.lower())
    assert set(string.ascii_lowercase) <= letters  # a pangram
    assert "?" in SAMPLE_TEXT and "," in SAMPLE_TEXT  # a question and a phrase break for intonation
    assert any(d in SAMPLE_TEXT.lower() for d in ("sh", "th", "ch"))


def test_audition_key_depends_on_every_input():
    k = audition_key("desc", "model", 1, "text")
    assert k.startswith("audition-") and k == audition_key("desc", "model", 1, "text")
    assert len({k, audition_key("desc2", "model", 1, "text"), audition_key("desc", "model2", 1, "text"),
                audition_key("desc", "model", 2, "text"), audition_key("desc", "model", 1, "text2")}) == 5


def test_auditions_are_kept_as_wavs_and_reused(tmp_path):
    engine = VectorEngine()
    out = audition(engine, "A calm voice.", 3, [5, 6, 7, 8], SAMPLE_TEXT, tmp_path, "DR. KIM")
    assert [a.index for a in out] == [0, 1, 2] and [a.seed for a in out] == [5, 6, 7]
    assert engine.design_calls == 1 and engine.designed_seeds == [5, 6, 7]
    for a in out:
        assert a.path.endswith(f"dr-kim/audition-{a.index}.wav")
        assert read_audio(a.path).digest() == a.digest
        assert json.loads((tmp_path / "dr-kim" / f"audition-{a.index}.json").read_text())["key"] == a.key
        assert Audition.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert len({a.digest for a in out}) == 3
    again = audition(engine, "A calm voice.", 3, [5, 6, 7], SAMPLE_TEXT, tmp_path, "DR. KIM")
    assert again == out and engine.design_calls == 1  # nothing redesigned
    changed = audition(engine, "A calm voice.", 3, [5, 6, 99], SAMPLE_TEXT, tmp_path, "DR. KIM")
    assert engine.designed_seeds == [5, 6, 7, 99]  # only the changed seed
    assert changed[:2] == out[:2] and changed[2].digest != out[2].digest
    with pytest.raises(ValueError):
        audition(engine, "A calm voice.", 3, [1], SAMPLE_TEXT, tmp_path, "DR. KIM")


def test_pick_maximises_the_minimum_distance_to_the_cast():
    cast = {"MARGARET": one_hot(0), "TOMAS": one_hot(1)}
    candidates = [one_hot(0) * 0.9 + one_hot(2) * 0.1,  # nearly MARGARET
                  one_hot(1) + one_hot(3),  # halfway to TOMAS
                  one_hot(4)]  # unlike anyone
    index, reason = pick(candidates, cast)
    assert index == 2
    assert "MARGARET" in reason and "1.000" in reason and "#0" in reason and "#1" in reason
    # without the outsider, the one farther from its nearest cast voice wins
    index, _ = pick(candidates[:2], cast)
    assert index == 1
    # the nearest voice is what counts, not the average: #0 is far from TOMAS but close to MARGARET
    assert cosine_distance(candidates[0], cast["TOMAS"]) > cosine_distance(candidates[1], cast["TOMAS"])


def test_pick_first_character_takes_the_most_typical_candidate():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    candidates = [centre + rng.normal(scale=s, size=16) for s in (0.8, 0.05, 0.9)]
    index, reason = pick(candidates, {})
    assert index == 1 and "centroid" in reason
    assert pick([one_hot(1)], {})[0] == 0


def test_pick_pinned_and_degenerate_cases():
    cands = [one_hot(0), one_hot(1), one_hot(2)]
    assert pick(cands, {"A": one_hot(2)}, pinned=2) == (2, PINNED_REASON)
    with pytest.raises(ValueError):
        pick(cands, {}, pinned=3)
    assert pick([None, None], {"A": one_hot(0)})[0] == 0  # engine without a speaker encoder
    assert pick([one_hot(0), one_hot(0)], {"A": one_hot(1)})[0] == 0  # ties: lower index
    assert pick(cands, [one_hot(0), one_hot(1)])[0] == 2  # a plain list of cast vectors works too
