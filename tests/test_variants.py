"""Delivery variants (pipeline.variants): which are made, the similarity gate, locks, routing, cast-file pins."""

from __future__ import annotations

import numpy as np
import pytest

from fakes_casting import VectorEngine, one_hot
from pipeline.castfile import load_cast_file
from pipeline.casting import cast_script
from pipeline.config import load_settings
from pipeline.errors import CastFileError
from pipeline.fountain import parse_fountain
from pipeline.lock import load_lock
from pipeline.render import plan_line_jobs
from pipeline.variants import gate, similarities, variant_seeds, variant_voices, wanted_variants

SCRIPT = """INT. LAMP ROOM - NIGHT

MARGARET
(shouting)
Get out of my lighthouse!

TOMAS
I only came to help.

MARGARET
(yelling)
Out! And take your machine with you!

MARGARET
(whispering)
Do you hear that?

MARGARET
The boat is late again.

TOMAS
(shouting)
Margaret!
"""


def _settings(**delivery):
    over = {"casting.auditions": 2, "casting.extras_pool": 0, "delivery.min_lines": 2, "delivery.auditions": 3}
    over.update({f"delivery.{k}": v for k, v in delivery.items()})
    return load_settings(overrides=over)


def _vectors(settings, near: dict[str, int], sim: float = 0.9):
    """Speaker vectors by seed: MARGARET's neutral auditions lie on axis 0, TOMAS's on axis 1; MARGARET's variant
    take `near[class]` sits at cosine `sim` to axis 0, every other variant take at cosine 0.2."""
    table: dict[int, np.ndarray] = {}
    for name, axis in (("MARGARET", 0), ("TOMAS", 1)):
        from pipeline.casting import audition_seeds

        for s in audition_seeds(name, settings):
            table[s] = one_hot(axis)
    for delivery in ("shouting", "whispering"):
        for i, s in enumerate(variant_seeds("MARGARET", delivery, settings)):
            if near.get(delivery) == i:
                table[s] = (sim * one_hot(0) + np.sqrt(1 - sim**2) * one_hot(6)).astype(np.float32)
            else:
                table[s] = (0.2 * one_hot(0) + np.sqrt(1 - 0.04) * one_hot(5 + i % 2)).astype(np.float32)
    return lambda seed: table.get(seed, one_hot(7))


def _cast(tmp_path, settings, vectors, castfile=None):
    sp = parse_fountain(SCRIPT)
    engine = VectorEngine(vectors)
    results = cast_script(sp, engine, settings, castfile, tmp_path / "auditions", tmp_path / "locks")
    return sp, engine, results


# ------------------------------------------------------------------------------------------ unit: what, gate


def test_variants_are_wanted_only_at_or_above_the_line_count():
    s = _settings()
    counts = {"shouting": 3, "whispering": 1, "muttering": 2}
    assert wanted_variants(counts, s) == [("muttering", 2, None), ("shouting", 3, None)]
    assert wanted_variants(counts, _settings(min_lines=3)) == [("shouting", 3, None)]
    assert wanted_variants(counts, _settings(mode="instruct")) == []
    assert wanted_variants(counts, _settings(mode="off")) == []
    assert [w[0] for w in wanted_variants(counts, _settings(mode="both"))] == ["muttering", "shouting"]


def test_the_gate_keeps_the_closest_take_only_above_min_similarity():
    neutral = one_hot(0)
    far = [one_hot(3), 0.3 * one_hot(0) + 0.95 * one_hot(4)]
    sims = similarities(far, neutral)
    assert sims[0] == pytest.approx(0.0) and sims[1] == pytest.approx(0.3 / np.hypot(0.3, 0.95), abs=1e-5)
    index, reason = gate(sims, 0.7)
    assert index is None and "below delivery.min_similarity 0.7" in reason and "audition 1" in reason
    near = far + [0.9 * one_hot(0) + 0.1 * one_hot(2)]
    index, reason = gate(similarities(near, neutral), 0.7)
    assert index == 2 and "closest to the neutral voice" in reason
    index, reason = gate(similarities(near, neutral), 0.7, pinned=0)  # a pin wins, its similarity is said
    assert index == 0 and "pinned by cast file" in reason and "0.000" in reason
    assert gate([None, None], 0.7)[0] is None  # no embeddings: no take can be shown to be the same person


# ------------------------------------------------------------------------------------------ casting


def test_cast_makes_variants_above_the_count_and_locks_them_in_the_family(tmp_path):
    s = _settings()
    sp, engine, results = _cast(tmp_path, s, _vectors(s, {"shouting": 1}))
    marge = results["MARGARET"]
    assert [v.delivery for v in marge.variants] == ["shouting"]  # shouting 2 lines (shouting, yelling); whisper 1
    [v] = marge.variants
    assert v.status == "locked" and v.chosen == 1 and v.lines == 2
    assert v.similarity == pytest.approx(0.9, abs=1e-4)
    assert "Shouting, loud and forceful." in v.description and v.description.startswith(
        marge.description.rstrip("."))
    lock = load_lock(v.lock_path)
    assert lock.params["family"] == "MARGARET" and lock.params["delivery"] == "shouting"
    assert lock.params["neutral"] == marge.lock_digest and lock.digest() == v.lock_digest
    from pathlib import Path

    assert Path(v.lock_path).parent == Path(marge.lock_path).parent  # one lock folder per character
    assert results["TOMAS"].variants == ()  # one shouted line: below min_lines


def test_the_gate_rejects_far_takes_and_the_cast_says_why(tmp_path):
    s = _settings()
    sp, engine, results = _cast(tmp_path, s, _vectors(s, {}))
    [v] = results["MARGARET"].variants
    assert v.status == "rejected" and v.lock_digest is None and v.chosen is None
    assert "below delivery.min_similarity" in v.reason
    assert variant_voices({"MARGARET": results["MARGARET"].variants}) == {}


def test_a_pinned_variant_changes_the_pick_and_can_ask_below_the_count(tmp_path):
    s = _settings()
    cast_toml = tmp_path / "cast.toml"
    cast_toml.write_text("[characters.MARGARET]\nvariants.shouting = { audition = 2 }\n"
                         "variants.whispering = {}\n", encoding="utf-8")
    sp = parse_fountain(SCRIPT)
    castfile = load_cast_file(cast_toml, sp.characters())
    vectors = _vectors(s, {"shouting": 1, "whispering": 0})
    _, _, auto = _cast(tmp_path / "a", s, vectors)
    _, _, pinned = _cast(tmp_path / "b", s, vectors, castfile)
    assert auto["MARGARET"].variants[0].chosen == 1
    shout = next(v for v in pinned["MARGARET"].variants if v.delivery == "shouting")
    assert shout.chosen == 2 and shout.status == "locked" and "pinned by cast file" in shout.reason
    assert shout.lock_digest != auto["MARGARET"].variants[0].lock_digest
    assert [v.delivery for v in pinned["MARGARET"].variants] == ["whispering", "shouting"]


def test_variants_false_in_the_cast_file_switches_them_off(tmp_path):
    s = _settings()
    cast_toml = tmp_path / "cast.toml"
    cast_toml.write_text("[characters.MARGARET]\nvariants = false\n", encoding="utf-8")
    castfile = load_cast_file(cast_toml, parse_fountain(SCRIPT).characters())
    _, engine, results = _cast(tmp_path, s, _vectors(s, {"shouting": 1}), castfile)
    assert results["MARGARET"].variants == ()
    assert engine.design_calls == 3  # the neutral designs only: MARGARET, TOMAS and the narrator (no variants)


def test_an_unknown_delivery_class_names_file_character_and_classes(tmp_path):
    cast_toml = tmp_path / "cast.toml"
    cast_toml.write_text("[characters.MARGARET]\nvariants.screaming = { audition = 1 }\n", encoding="utf-8")
    with pytest.raises(CastFileError) as e:
        load_cast_file(cast_toml, parse_fountain(SCRIPT).characters())
    msg = str(e.value)
    assert str(cast_toml) in msg and "[characters.MARGARET] variants.screaming" in msg
    assert "'screaming' is not a delivery class" in msg and "shouting" in msg and "whispering" in msg


def test_a_variant_pin_beyond_the_takes_fails_before_designing(tmp_path):
    cast_toml = tmp_path / "cast.toml"
    cast_toml.write_text("[characters.MARGARET]\nvariants.shouting = { audition = 5 }\n", encoding="utf-8")
    castfile = load_cast_file(cast_toml, parse_fountain(SCRIPT).characters())
    s = _settings()
    engine = VectorEngine(_vectors(s, {}))
    with pytest.raises(CastFileError, match=r"MARGARET\] variants.shouting: audition 5 does not exist"):
        cast_script(parse_fountain(SCRIPT), engine, s, castfile, tmp_path / "a", tmp_path / "l")
    assert engine.design_calls == 0


# ------------------------------------------------------------------------------------------ routing, keys, rerun


def test_lines_route_to_their_variant_and_only_their_keys_change(tmp_path):
    s = _settings()
    sp, engine, results = _cast(tmp_path, s, _vectors(s, {"shouting": 1}))
    voices = {n: r.lock_digest for n, r in results.items()}
    variants = variant_voices({n: r.variants for n, r in results.items()})
    desc = engine.info().identity()
    plain = plan_line_jobs(sp, voices, desc, s)  # before the variant existed
    routed = plan_line_jobs(sp, voices, desc, s, variants)
    shout = variants["MARGARET"]["shouting"]
    changed = [(a, b) for a, b in zip(plain, routed) if a.key != b.key]
    assert [(b.character, b.delivery, b.voice_digest, b.variant) for _, b in changed] == [
        ("MARGARET", "shouting", shout, True), ("MARGARET", "shouting", shout, True)]
    others = [b for b in routed if b.voice_digest != shout]
    assert {(b.character, b.delivery) for b in others} == {
        ("TOMAS", None), ("MARGARET", "whispering"), ("MARGARET", None), ("TOMAS", "shouting"),
        ("NARRATOR", None)}  # the narrator reads in its neutral voice
    assert all(not b.variant for b in others)
    # delivery off: variants that exist are not used
    assert [j.key for j in plan_line_jobs(sp, voices, desc, _settings(mode="off"), variants)] == [
        j.key for j in plain]


def test_a_rerun_reuses_every_audition_and_lock(tmp_path):
    s = _settings()
    vectors = _vectors(s, {"shouting": 1})
    sp = parse_fountain(SCRIPT)
    engine = VectorEngine(vectors)  # one engine: the fake knows its takes' vectors from designing them
    first = cast_script(sp, engine, s, None, tmp_path / "auditions", tmp_path / "locks")
    designs = engine.design_calls
    again = cast_script(sp, engine, s, None, tmp_path / "auditions", tmp_path / "locks")
    assert engine.design_calls == designs  # every audition (neutral and variant) reused from its file
    assert first["MARGARET"].variants[0].status == "locked"
    assert [v.to_json() for v in again["MARGARET"].variants] == [v.to_json() for v in first["MARGARET"].variants]
