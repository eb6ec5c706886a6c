"""Device treatments for lines like "(on the radio)": band limits that really remove energy, deterministic, and
applied by the scene mixer to exactly the lines that carry them."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from audio_fixtures import RATE, line, noise

from pipeline.assemble import mix_scene
from pipeline.config import Settings
from pipeline.effects import TREATMENTS, apply_effects


def band_energy(x: np.ndarray, low: float, high: float, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def test_radio_and_phone_cut_lows_and_highs():
    x = noise(RATE, amp=0.2, seed=3)
    for tag in ("radio", "phone"):
        y = apply_effects(x, RATE, (tag,))
        assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
        kept = band_energy(y, 800, 2500) / band_energy(x, 800, 2500)
        assert band_energy(y, 6000, 12000) / band_energy(x, 6000, 12000) < 0.01 * kept, tag
        assert band_energy(y, 20, 120) / band_energy(x, 20, 120) < 0.05 * kept, tag


def test_muffled_is_a_low_pass_and_unknown_tags_pass_through():
    x = noise(RATE, amp=0.2, seed=4)
    y = apply_effects(x, RATE, ("muffled",))
    assert band_energy(y, 4000, 12000) < 0.01 * band_energy(x, 4000, 12000)
    assert np.array_equal(apply_effects(x, RATE, ("no-such-effect",)), x)
    assert np.array_equal(apply_effects(x, RATE, ()), x)


def test_effects_are_deterministic():
    x = noise(RATE // 2, seed=5)
    for tag in TREATMENTS:
        assert np.array_equal(apply_effects(x, RATE, (tag,)), apply_effects(x, RATE, (tag,))), tag


def test_mixer_treats_only_the_lines_that_carry_an_effect(tmp_path):
    lines = [line(tmp_path, "a", "MARGARET", RATE, seed=1), line(tmp_path, "b", "OTTO", RATE, seed=2, effects=("radio",))]
    result = mix_scene(lines, tmp_path / "scene.wav", Settings(), scene_index=0, heading=None)
    mixed, rate = sf.read(result.path, dtype="float32")
    plain, radio = (mixed[c.start_sample:c.end_sample] for c in result.cues)
    hf = lambda x: band_energy(x, 6000, 12000, rate) / band_energy(x, 300, 3000, rate)  # noqa: E731
    assert hf(radio) < 0.01 * hf(plain)
