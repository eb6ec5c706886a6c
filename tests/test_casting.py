"""Casting end to end: analyze -> audition -> pick -> lock, cast-file pins, extras, reruns; on a fake engine with
constructed speaker vectors and (when available) on tiny Qwen3-TTS checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakes_casting import VectorEngine
from pipeline.castfile import CastFile, CastEntry, ExtrasConfig, load_cast_file
from pipeline.casting import (
    CastResult,
    assign_extras,
    audition_seeds,
    cast_script,
    pool_profile,
)
from pipeline.config import load_settings
from pipeline.design import PINNED_REASON, cosine_distance
from pipeline.errors import CastFileError
from pipeline.evidence import Evidence, Introduction
from pipeline.lock import load_lock, save_lock

SETTINGS = load_settings(overrides={"narration.mode": "none"})  # the characters alone; the narrator: see below
NARRATED = load_settings()


def ev(name, n_lines, intro=None, note=None):
    return Evidence(name=name, cues=(name,), lines=tuple(f"{name} line {i}." for i in range(n_lines)),
                    parentheticals=(), action_mentions=(), scenes=("INT. ROOM",),
                    introduction=Introduction(intro, 1, note, ()) if intro else None)


EVS = {
    "MARGARET": ev("MARGARET", 8, "MARGARET HALE (70s), a weathered, stubborn old keeper, polishes the lens.", "70s"),
    "TOMAS": ev("TOMAS", 4, "TOMAS REYES (30s), an earnest young engineer, shakes rain from his coat.", "30s"),
    "JUNE": ev("JUNE", 4, "JUNE HALE (40s), Margaret's sharp, impatient daughter, carries a box.", "40s"),
    "OTTO": ev("OTTO", 2, "It is OTTO, a boy of ten, calling from a fishing boat."),
}


def seeded_vectors(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=8).astype(np.float32)


def run(tmp_path, engine, castfile=None, evidences=EVS, settings=SETTINGS):
    return cast_script(None, engine, settings, castfile, tmp_path / "auditions", tmp_path / "locks",
                       evidences=evidences)


def cast_from(tmp_path, text: str, names=tuple(EVS)) -> CastFile:
    path = tmp_path / "cast.toml"
    path.write_text(text, encoding="utf-8")
    return load_cast_file(path, names)


def test_cast_script_end_to_end_on_a_fake_engine(tmp_path):
    engine = VectorEngine(seeded_vectors)
    results = run(tmp_path, engine)
    assert list(results) == list(EVS)  # script order
    assert engine.released and engine.lock_calls == 4
    for name, r in results.items():
        assert r.source == "designed" and len(r.auditions) == SETTINGS.casting.auditions
        assert all(Path(a.path).is_file() for a in r.auditions)  # kept for people to listen to
        lock = load_lock(r.lock_path)
        assert lock.digest() == r.lock_digest and lock.name == name
        assert lock.seed == r.chosen_audition.seed and lock.description == r.description
        back = CastResult.from_json(json.loads(json.dumps(r.to_json())))
        assert back == r
    assert results["MARGARET"].profile.gender == "female"
    assert "female voice" in results["MARGARET"].description
    # leads first: the character with most lines has nothing to differ from
    assert "centroid" in results["MARGARET"].reason
    # everyone after is the candidate farthest from its nearest already-cast voice
    order = ["MARGARET", "TOMAS", "JUNE", "OTTO"]
    for i, name in enumerate(order[1:], 1):
        cast = [seeded_vectors(results[o].chosen_audition.seed) for o in order[:i]]
        mins = [min(cosine_distance(seeded_vectors(a.seed), c) for c in cast) for a in results[name].auditions]
        assert results[name].chosen == int(np.argmax(mins)), name
        assert "most distinct" in results[name].reason


def test_rerun_reuses_auditions_and_locks(tmp_path):
    engine = VectorEngine(seeded_vectors)
    first = run(tmp_path, engine)
    assert engine.design_calls == 4
    second = run(tmp_path, engine)
    assert engine.design_calls == 4  # every audition file was reused
    assert {n: r.lock_path for n, r in second.items()} == {n: r.lock_path for n, r in first.items()}


def test_pinning_another_audition_changes_the_pick(tmp_path):
    engine = VectorEngine(seeded_vectors)
    auto = run(tmp_path, engine)["JUNE"]
    other = (auto.chosen + 1) % SETTINGS.casting.auditions
    castfile = cast_from(tmp_path, f"[characters.JUNE]\naudition = {other}\n")
    pinned = run(tmp_path, engine, castfile)["JUNE"]
    assert pinned.chosen == other and pinned.reason == PINNED_REASON
    assert pinned.lock_digest != auto.lock_digest and pinned.lock_path != auto.lock_path
    assert load_lock(pinned.lock_path).seed == pinned.auditions[other].seed
    assert [a.digest for a in pinned.auditions] == [a.digest for a in auto.auditions]  # same candidates


def test_cast_file_overrides_description_and_seed(tmp_path):
    castfile = cast_from(tmp_path, '[characters.TOMAS]\ngender = "female"\nseed = 4242\n\n'
                                   '[characters.OTTO]\ndescription = "A bright, excited child\'s voice."\n')
    engine = VectorEngine(seeded_vectors)
    results = run(tmp_path, engine, castfile)
    tomas = results["TOMAS"]
    assert tomas.profile.gender == "female" and tomas.profile.confidence("gender") == 1.0
    assert "female voice" in tomas.description
    assert [a.seed for a in tomas.auditions] == [4242, 4243, 4244]
    assert results["OTTO"].description == "A bright, excited child's voice."


def test_audition_pin_out_of_range_names_file_character_and_key(tmp_path):
    castfile = cast_from(tmp_path, "[characters.JUNE]\naudition = 7\n")
    with pytest.raises(CastFileError) as info:
        run(tmp_path, VectorEngine(seeded_vectors), castfile)
    message = str(info.value)
    assert str(castfile.path) in message and "[characters.JUNE] audition" in message and "0 … 2" in message


def test_pinned_lock_file_is_used_as_is(tmp_path):
    engine = VectorEngine(seeded_vectors)
    audio = engine.design("A calm voice.", "Hello there.", [7])[0]
    lock = engine.lock(audio, "Hello there.", name="margaret-voice")
    save_lock(lock, tmp_path / "voices" / "m.lock.safetensors")
    castfile = cast_from(tmp_path, '[characters.MARGARET]\nlock = "voices/m.lock.safetensors"\n')
    engine = VectorEngine(seeded_vectors)
    results = run(tmp_path, engine, castfile)
    m = results["MARGARET"]
    assert m.source == "lock" and m.auditions == () and m.chosen is None
    assert Path(m.lock_path) == (tmp_path / "voices" / "m.lock.safetensors").resolve()
    assert m.lock_digest == lock.digest() and "pinned by cast file" in m.reason
    assert engine.design_calls == 3  # nobody designed MARGARET


def test_damaged_pinned_lock_is_a_cast_file_error(tmp_path):
    (tmp_path / "bad.lock.safetensors").write_bytes(b"not a lock")
    castfile = cast_from(tmp_path, '[characters.MARGARET]\nlock = "bad.lock.safetensors"\n')
    with pytest.raises(CastFileError, match=r"\[characters.MARGARET\] lock"):
        run(tmp_path, VectorEngine(seeded_vectors), castfile)


def test_preset_voice(tmp_path):
    castfile = cast_from(tmp_path, '[characters.JUNE]\npreset = "vivian"\ninstruct = "Speak briskly."\n')
    engine = VectorEngine(seeded_vectors)
    june = run(tmp_path, engine, castfile)["JUNE"]
    assert june.source == "preset" and "vivian" in june.reason and "Speak briskly." in june.reason
    assert load_lock(june.lock_path).params["instruct"] == "Speak briskly."


# --------------------------------------------------------------------------------------------- extras


MINOR = {
    "HOST": ev("HOST", 9, "HOST (50s), a jovial man, waves. He grins.", "50s"),
    "GUARD": ev("GUARD", 1, "GUARD (40s), a bored man. He yawns.", "40s"),
    "NURSE": ev("NURSE", 1, "NURSE (30s), a brisk woman. She checks a chart.", "30s"),
    "CLERK": ev("CLERK", 1),
    "WAITER": ev("WAITER", 1, "WAITER (20s), a nervous man. He drops a plate.", "20s"),
    "MAID": ev("MAID", 2, "MAID (60s), a tired woman. She sighs.", "60s"),
}


def test_assign_extras_is_deterministic_and_matches_gender():
    from pipeline.analysis.heuristic import HeuristicAnalyzer

    profiles = {n: HeuristicAnalyzer().analyze(e) for n, e in MINOR.items()}
    extras = assign_extras(MINOR, None, SETTINGS, profiles)  # max_lines 1, pool 3 (male, female, male)
    assert extras == {"GUARD": 0, "NURSE": 1, "CLERK": 0, "WAITER": 2}
    assert assign_extras(MINOR, None, SETTINGS, profiles) == extras
    assert pool_profile(0).gender == "male" and pool_profile(1).gender == "female"
    # without profiles: round-robin in script order
    assert assign_extras(MINOR, None, SETTINGS) == {"GUARD": 0, "NURSE": 1, "CLERK": 2, "WAITER": 0}
    # the cast file's [extras] beats settings; extra = true/false beats the line count; a pin keeps a voice
    castfile = CastFile(characters={"MAID": CastEntry("MAID", extra=True), "GUARD": CastEntry("GUARD", extra=False),
                                    "NURSE": CastEntry("NURSE", seed=3)},
                        extras=ExtrasConfig(max_lines=1, pool=2))
    assert assign_extras(MINOR, castfile, SETTINGS) == {"CLERK": 0, "WAITER": 1, "MAID": 0}
    assert assign_extras(MINOR, CastFile(extras=ExtrasConfig(pool=0)), SETTINGS) == {}
    assert set(assign_extras(MINOR, CastFile(extras=ExtrasConfig(max_lines=2)), SETTINGS)) == {
        "GUARD", "NURSE", "CLERK", "WAITER", "MAID"}


def test_extras_share_pool_voices(tmp_path):
    engine = VectorEngine(seeded_vectors)
    results = run(tmp_path, engine, evidences=MINOR)
    assert results["HOST"].source == "designed" and results["MAID"].source == "designed"
    extras = {n: r for n, r in results.items() if r.source == "extra"}
    assert set(extras) == {"GUARD", "NURSE", "CLERK", "WAITER"}
    assert extras["GUARD"].lock_path == extras["CLERK"].lock_path  # both on pool voice 1
    assert extras["GUARD"].extra_voice == "EXTRAS POOL 1" and extras["NURSE"].extra_voice == "EXTRAS POOL 2"
    assert len({r.lock_path for r in extras.values()}) == 3
    assert "1 line (extras have at most 1)" in extras["GUARD"].reason
    assert extras["NURSE"].profile.gender == "female"  # each extra keeps its own profile
    assert engine.design_calls == 2 + 3  # two main voices, three pool voices


# --------------------------------------------------------------------------------------------- real scripts


def test_sample_script_with_the_example_cast_file(tmp_path, sample_script):
    from pipeline.fountain import read_script

    screenplay = read_script(sample_script)
    castfile = load_cast_file(Path(__file__).resolve().parent.parent / "pipeline" / "configs" / "cast.example.toml",
                              screenplay.characters())
    engine = VectorEngine(seeded_vectors)
    results = cast_script(screenplay, engine, SETTINGS, castfile, tmp_path / "auditions", tmp_path / "locks")
    assert set(results) == {"MARGARET", "TOMAS", "JUNE", "OTTO"}
    m = results["MARGARET"]
    assert m.chosen == 1 and m.reason == PINNED_REASON and m.description.startswith("A low, weathered")
    assert m.profile.age_range == (70, 78)
    assert [a.seed for a in results["TOMAS"].auditions] == [4242, 4243, 4244]
    assert results["OTTO"].source == "designed" and results["OTTO"].profile.age_range == (9, 11)
    assert all(Path(r.lock_path).is_file() for r in results.values())


@pytest.mark.tiny
def test_audition_pick_lock_on_tiny_qwen3_checkpoints(tmp_path, tiny_models):
    from pipeline.engines import create_engine

    settings = SETTINGS.with_overrides({"casting.auditions": 2, "casting.extras_pool": 0})
    engine = create_engine("qwen3", settings, tiny_models)
    evidences = {"MARGARET": EVS["MARGARET"], "TOMAS": EVS["TOMAS"]}
    results = cast_script(None, engine, settings, None, tmp_path / "auditions", tmp_path / "locks",
                          evidences=evidences, release=False)
    for name, r in results.items():
        lock = load_lock(r.lock_path)
        assert lock.kind == "clone" and lock.x_vector is not None and lock.ref_text == settings.casting.sample_text
        assert lock.digest() == r.lock_digest
    assert "centroid" in results["MARGARET"].reason and "most distinct" in results["TOMAS"].reason
    auto = results["TOMAS"].chosen
    castfile = CastFile(characters={"TOMAS": CastEntry("TOMAS", audition=1 - auto)})
    pinned = cast_script(None, engine, settings, castfile, tmp_path / "auditions", tmp_path / "locks",
                         evidences=evidences)["TOMAS"]
    assert pinned.chosen == 1 - auto and pinned.reason == PINNED_REASON
    assert pinned.lock_digest != results["TOMAS"].lock_digest


def test_audition_seeds():
    a = audition_seeds("MARGARET", SETTINGS)
    assert a == audition_seeds("MARGARET", SETTINGS) and len(a) == SETTINGS.casting.auditions
    assert a != audition_seeds("JUNE", SETTINGS)  # one description, two characters: still different voices
    assert a != audition_seeds("MARGARET", SETTINGS.with_overrides({"casting.audition_seed": 99}))
    assert audition_seeds("MARGARET", SETTINGS, CastEntry("MARGARET", seed=10)) == [10, 11, 12]


@pytest.mark.tiny
def test_cast_file_vox_voice_is_imported_and_renders(tmp_path, tiny_models):
    """A .vox exported from one cast pins a character in another: same clone prompt, and it speaks."""
    from pipeline.engines import create_engine
    from pipeline.engines.base import RenderJob
    from pipeline.vox import export_vox

    settings = SETTINGS.with_overrides({"casting.auditions": 1, "casting.extras_pool": 0})
    engine = create_engine("qwen3", settings, tiny_models)
    audio = engine.design("A low, calm, elderly female voice.", settings.casting.sample_text, [11])[0]
    original = engine.lock(audio, settings.casting.sample_text, "en", name="keeper", description="A calm keeper.")
    export_vox(original, tmp_path / "voices" / "keeper.vox", size="0.6b")
    castfile = cast_from(tmp_path, '[characters.MARGARET]\nlock = "voices/keeper.vox"\n')
    results = cast_script(None, engine, settings, castfile, tmp_path / "auditions", tmp_path / "locks",
                          evidences={"MARGARET": EVS["MARGARET"]}, release=False)
    m = results["MARGARET"]
    assert m.source == "lock" and m.auditions == ()
    lock = load_lock(m.lock_path)
    assert lock.name == "MARGARET" and lock.ref_text == original.ref_text
    assert np.array_equal(lock.ref_codes, original.ref_codes)
    assert np.allclose(lock.x_vector, original.x_vector, atol=1e-6)
    [outcome] = engine.render(lock, [RenderJob(key="line-vox", text="Still here, Otto.", seed=5)])
    assert outcome.ok, outcome.error


def test_the_casting_loop_takes_its_steps_as_plain_functions():
    """The loop the flow runs with cached tasks, driven here by plain recording functions: the order of the steps,
    what each is given, and that a pinned pick and the voices already cast reach `pick`."""
    from pipeline.casting import CastingSteps, Pick, cast_characters
    from pipeline.analysis.heuristic import HeuristicAnalyzer
    from pipeline.design import Audition

    calls = []

    def design(name, description, seeds):
        calls.append(("design", name))
        return [Audition(name, i, s, description, "t", f"/a/{name}-{i}.wav", f"d{i}", f"k{i}")
                for i, s in enumerate(seeds)]

    def pick(name, auditions, cast, pinned):
        calls.append(("pick", name, tuple(sorted(cast)), pinned))
        return Pick(pinned if pinned is not None else 0, "picked", np.ones(2, np.float32))

    steps = CastingSteps(
        analyze=lambda name, evidence, overrides: calls.append(("analyze", name))
        or HeuristicAnalyzer().analyze(evidence),
        design=design, pick=pick,
        lock=lambda name, chosen: calls.append(("lock", name, chosen.index)) or (f"/l/{name}", f"digest-{name}"),
        pinned=lambda name, profile, entry: pytest.fail("nothing is pinned"),
        release=lambda: calls.append(("release",)),
    )
    castfile = CastFile(characters={"JUNE": CastEntry("JUNE", audition=2)})
    results = cast_characters(EVS, SETTINGS.with_overrides({"casting.extras_pool": 1, "casting.extras_max_lines": 2}),
                              castfile, steps)
    assert list(results) == list(EVS) and results["JUNE"].chosen == 2 and results["JUNE"].lock_digest == "digest-JUNE"
    assert [c for c in calls if c[0] == "analyze"] == [("analyze", n) for n in EVS]
    picks = [c for c in calls if c[0] == "pick"]
    assert picks[0] == ("pick", "MARGARET", (), None)  # the lead has nothing to differ from
    assert ("pick", "JUNE", ("MARGARET", "TOMAS"), 2) in picks  # the pin and the voices cast before it
    assert results["OTTO"].source == "extra" and results["OTTO"].extra_voice == "EXTRAS POOL 1"
    assert calls[-1] == ("release",)


# ------------------------------------------------------------------------------------------------ the narrator


def test_narrator_is_one_more_entry_cast_last_and_distinct(tmp_path):
    engine = VectorEngine(seeded_vectors)
    results = run(tmp_path, engine, settings=NARRATED)
    assert list(results) == [*EVS, "NARRATOR"]
    narrator = results["NARRATOR"]
    assert narrator.source == "designed" and narrator.description == NARRATED.narration.description
    assert load_lock(narrator.lock_path).name == "NARRATOR"
    # picked by the same rule: the audition farthest from its nearest already-cast voice
    cast = [seeded_vectors(results[o].chosen_audition.seed) for o in EVS]
    mins = [min(cosine_distance(seeded_vectors(a.seed), c) for c in cast) for a in narrator.auditions]
    assert narrator.chosen == int(np.argmax(mins)) and "most distinct" in narrator.reason
    # switching narration on changes no other voice
    plain = run(tmp_path, engine)
    assert {n: r.lock_digest for n, r in plain.items()} == {n: results[n].lock_digest for n in EVS}


def test_narrator_table_pins_like_a_character(tmp_path):
    castfile = cast_from(tmp_path, '[narrator]\ndescription = "A low, dry storyteller."\nseed = 77\naudition = 1\n')
    narrator = run(tmp_path, VectorEngine(seeded_vectors), castfile, settings=NARRATED)["NARRATOR"]
    assert narrator.description == "A low, dry storyteller."
    assert [a.seed for a in narrator.auditions] == [77 + i for i in range(NARRATED.casting.auditions)]
    assert narrator.chosen == 1 and narrator.reason == PINNED_REASON


def test_narrator_profile_keys_describe_the_narrator(tmp_path):
    castfile = cast_from(tmp_path, '[narrator]\ngender = "female"\nage_range = [60, 70]\n')
    narrator = run(tmp_path, VectorEngine(seeded_vectors), castfile, settings=NARRATED)["NARRATOR"]
    assert "female voice" in narrator.description and narrator.profile.age_range == (60, 70)


def test_script_character_named_narrator_is_the_narrator(tmp_path):
    evs = {**EVS, "NARRATOR": ev("NARRATOR", 1)}
    results = run(tmp_path, VectorEngine(seeded_vectors), evidences=evs, settings=NARRATED)
    assert list(results) == list(evs)  # one voice: no second narrator entry
    narrator = results["NARRATOR"]
    assert narrator.source == "designed"  # one line, but never an extra
    assert narrator.description == NARRATED.narration.description


def test_narrator_unknown_key_is_an_error_like_a_characters(tmp_path):
    with pytest.raises(CastFileError, match=r"cast.toml: \[narrator\] voice: unknown key.*Available"):
        cast_from(tmp_path, '[narrator]\nvoice = "x"\n')
    with pytest.raises(CastFileError, match=r"\[narrator\] extra: unknown key. The narrator is never an extra"):
        cast_from(tmp_path, '[narrator]\nextra = true\n')
    with pytest.raises(CastFileError, match=r"\[narrator\] seed: expected a whole number"):
        cast_from(tmp_path, '[narrator]\nseed = "x"\n')
    with pytest.raises(CastFileError, match=r"both describe the narrator"):
        cast_from(tmp_path, '[narrator]\nseed = 1\n[characters.NARRATOR]\nseed = 2\n', names=(*EVS, "NARRATOR"))
