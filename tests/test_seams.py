"""Per-line processing before placement: trimmed seams, off-screen treatment, long lines in pieces, narration gaps.
Measured on synthetic line audio in real scene mixes (no engine)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import RATE, line, noise, write_line

from pipeline.assemble import MixLine, mix_scene, plan_scene
from pipeline.audio import trim_silence
from pipeline.chunks import estimate_seconds, split_speech
from pipeline.config import load_settings
from pipeline.fountain import parse_fountain
from pipeline.render import plan_line_jobs


def settings(**overrides):
    return load_settings(overrides={"loudness.preset": "custom", **overrides})


def _band_share(x: np.ndarray, rate: int, above: float) -> float:
    """Share of the energy above `above` Hz."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spec[freqs > above].sum() / spec.sum())


# ------------------------------------------------------------------------------------------------ trimming


def test_trim_silence_measured_on_a_padded_line():
    speech = noise(RATE, amp=0.2, seed=1)  # 1 s of "speech"
    padded = np.concatenate([np.zeros(RATE // 2), speech, np.zeros(int(0.8 * RATE))]).astype(np.float32)
    padded[: RATE // 2] += noise(RATE // 2, amp=0.0005, seed=2)  # room tone 52 dB down: still silence
    out = trim_silence(padded, RATE, threshold_db=-45.0, pad=0.015)
    pad = int(0.015 * RATE)
    assert abs(len(out) - (RATE + 2 * pad)) <= int(0.005 * RATE) + 1  # ± one 5 ms analysis window
    assert np.abs(out[pad + 240: -pad - 240]).min() > 0.009  # nothing of the speech was cut


def test_scene_gaps_are_the_pause_models_not_the_engines(tmp_path):
    s = settings()
    padded = np.concatenate([np.zeros(RATE), noise(RATE, 0.1, 3), np.zeros(RATE)]).astype(np.float32)
    lines = [MixLine("a", "ANNA", "Hi.", write_line(tmp_path, "a", padded)),
             MixLine("b", "BEN", "Hi.", write_line(tmp_path, "b", padded))]
    trimmed = mix_scene(lines, tmp_path / "t", s, scene_index=0, heading=None)
    untrimmed = mix_scene(lines, tmp_path / "u", settings(**{"pauses.trim_silence": False}), scene_index=0,
                          heading=None)
    a, b = trimmed.cues
    pad = s.pauses.trim_pad
    assert a.end - a.start == pytest.approx(1.0 + 2 * pad, abs=0.011)
    assert b.start - a.end == pytest.approx(s.pauses.speaker_change, abs=1e-3)
    assert untrimmed.duration - trimmed.duration == pytest.approx(4 * (1.0 - pad), abs=0.05)


# ------------------------------------------------------------------------------------------------ off-screen


def test_os_extension_marks_only_os_lines():
    sp = parse_fountain("INT. ROOM - DAY\n\nANNA (O.S.)\nHello?\n\nBEN (V.O.)\nNo.\n\nCARL\nYes.\n\n"
                        "DEE (O.S.)\n(on the radio)\nOver.\n")
    jobs = plan_line_jobs(sp, {}, {}, settings(**{"narration.mode": "none"}))
    assert [j.effects for j in jobs] == [("offscreen",), (), (), ("radio",)]  # a device already places a voice
    vo = plan_line_jobs(sp, {}, {}, settings(**{"narration.mode": "none", "offscreen.voice_over": "offscreen"}))
    assert vo[1].effects == ("offscreen",)


def test_os_line_is_band_limited_and_lower_in_the_scene_mix_and_no_other_line(tmp_path):
    s = settings()
    lines = [line(tmp_path, "n", "NARRATOR", RATE, seed=1, kind="action"),
             line(tmp_path, "a", "ANNA", RATE, seed=2),
             line(tmp_path, "o", "OTTO", RATE, seed=3, extension="O.S.", effects=("offscreen",)),
             line(tmp_path, "v", "BEN", RATE, seed=4, extension="V.O.")]
    res = mix_scene(lines, tmp_path / "s", s, scene_index=0, heading=None)
    mix, rate = sf.read(str(res.path))
    spans = {c.key: mix[c.start_sample:c.end_sample] for c in res.cues}
    high = {k: _band_share(x, rate, 7000.0) for k, x in spans.items()}
    low = {k: _band_share(x, rate, 0.0) - _band_share(x, rate, 120.0) for k, x in spans.items()}
    rms = {k: float(np.sqrt(np.mean(x ** 2))) for k, x in spans.items()}
    assert high["o"] < 0.02 and all(high[k] > 0.2 for k in "nav")  # white noise: ~40 % above 7 kHz
    assert low["o"] < low["a"] / 4
    level = 20 * np.log10(rms["o"] / rms["a"])
    assert level < -3.0  # the gain and the lost band together; the others sit level with each other
    assert abs(20 * np.log10(rms["v"] / rms["a"])) < 1.0 and abs(20 * np.log10(rms["n"] / rms["a"])) < 1.0


# ------------------------------------------------------------------------------------------------ long lines

MONOLOGUE = (
    "Forty-one years I have kept this light. My father kept it before me, and his mother before him, through "
    "storms that took the roofs off every house in the village. I have seen ships come home in weather you would "
    "not believe, and I have seen ships that never came home at all. Every night I climbed those stairs. Every "
    "night I wound the clockwork, trimmed the wick and polished the lens until it shone like a second moon. Do "
    "you know what it is to be needed? Not wanted. Needed. The sea does not care for your feelings, Mr. Reyes, "
    "and neither does the fog. Tonight it answers to me; tomorrow, to a box of wires. So be it."
)


def test_a_120_word_monologue_splits_into_pieces_under_the_limit():
    assert len(MONOLOGUE.split()) == 120
    s = load_settings()
    r = s.render
    pieces = split_speech(MONOLOGUE, r.max_chunk_seconds, r.min_chunk_seconds, r.speaking_rate)
    assert len(pieces) >= 4
    assert all(estimate_seconds(p, r.speaking_rate) <= r.max_chunk_seconds for p in pieces)
    assert all(estimate_seconds(p, r.speaking_rate) >= r.min_chunk_seconds for p in pieces)  # tiny ones merged
    assert " ".join(pieces) == MONOLOGUE
    assert all(p.rstrip()[-1] in ".?!" for p in pieces)  # sentence boundaries first
    assert not any(p.startswith("Reyes") for p in pieces)  # "Mr." ends no sentence


def test_run_on_sentence_splits_at_clauses_then_words():
    run_on = ", ".join(f"and then the {w} came down the hill" for w in "abcdefghij") + "."
    pieces = split_speech(run_on, 6.0, 1.0, 2.6)
    assert len(pieces) > 1 and all(len(p.split()) <= int(6.0 * 2.6) for p in pieces)
    assert all(p.endswith((",", ".")) for p in pieces)  # clause boundaries
    words = " ".join(["word"] * 100)
    assert all(len(p.split()) <= 15 for p in split_speech(words, 6.0, 1.0, 2.6))


def test_monologue_pieces_are_jobs_of_one_voice_and_one_cue(tmp_path):
    sp = parse_fountain(f"INT. ROOM - DAY\n\nMARGARET\n(quietly)\n{MONOLOGUE}\n\nTOMAS\nI see.\n")
    s = settings(**{"narration.mode": "none"})
    jobs = plan_line_jobs(sp, {"MARGARET": "m", "TOMAS": "t"}, {"engine": "x"}, s)
    pieces = [j for j in jobs if j.character == "MARGARET"]
    assert len(pieces) >= 4 and [j.piece for j in pieces] == list(range(len(pieces)))
    assert {j.voice_digest for j in pieces} == {"m"} and len({j.key for j in pieces}) == len(pieces)
    assert {j.instruct for j in pieces} == {"Speak softly and quietly."} and {j.pieces for j in pieces} == {len(pieces)}
    assert all(j.cue_text == MONOLOGUE for j in pieces)
    lines = [MixLine(j.key, j.character, j.text, write_line(tmp_path, j.key, noise(RATE // 2, 0.1, n)), piece=j.piece,
                     pieces=j.pieces, cue_text=j.cue_text) for n, j in enumerate(jobs)]
    res = mix_scene(lines, tmp_path / "s", s, scene_index=0, heading=None)
    assert [c.character for c in res.cues] == ["MARGARET", "TOMAS"] and res.cues[0].text == MONOLOGUE
    joined = len(pieces) * 0.5 + (len(pieces) - 1) * s.pauses.sentence
    assert res.cues[0].end - res.cues[0].start == pytest.approx(joined, abs=0.03 * len(pieces))


# ------------------------------------------------------------------------------------------------ narration gaps


def test_narration_lines_get_their_own_pauses():
    s = settings(**{"narration.pause": 0.7, "narration.heading_pause": 1.1})
    lines = [MixLine("h", "NARRATOR", "Interior.", None, kind="heading"),
             MixLine("x", "NARRATOR", "Anna sits.", None, kind="action"),
             MixLine("a", "ANNA", "Hi.", None), MixLine("b", "ANNA", "Again.", None),
             MixLine("y", "NARRATOR", "Ben enters.", None, kind="action")]
    placements, _ = plan_scene(lines, [RATE] * 5, s, RATE)
    starts = [p.start / RATE for p in sorted(placements, key=lambda p: p.index)]
    gaps = [round(b - a - 1.0, 6) for a, b in zip(starts, starts[1:])]
    assert gaps == [1.1, 0.7, s.pauses.same_speaker, 0.7]
