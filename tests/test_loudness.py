"""Loudness measurement, normalisation, true-peak limiting and the streaming meters."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
from audio_fixtures import RATE, noise, tone

from pipeline import loudness as ld
from pipeline.config import Settings


def speechy(seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Noise with a syllable-like envelope, pauses of digital silence and a few sharp clicks."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    env = np.repeat(rng.uniform(0, 1, n // 2400 + 1) ** 2, 2400)[:n]
    env[RATE : 2 * RATE] = 0
    x = rng.normal(0, 0.1, (n, channels)) * env[:, None]
    clicks = np.zeros(n, bool)
    clicks[:: RATE // 3] = True
    x[clicks & (env > 0)] = 0.8
    return x[:, 0] if channels == 1 else x


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("block", [1_000, 4_096, 65_536])
def test_streaming_meter_equals_pyloudnorm(channels, block):
    x = speechy(6.3, seed=channels, channels=channels)
    meter = ld.StreamingMeter(RATE, channels)
    for i in range(0, len(x), block):
        meter.feed(x[i : i + block])
    assert meter.frames == len(x)
    assert meter.integrated_lufs() == pytest.approx(pyloudnorm.Meter(RATE).integrated_loudness(x), abs=1e-6)
    assert meter.true_peak_db() == pytest.approx(ld.true_peak_db(x), abs=1e-9)
    assert meter.rms_db() == pytest.approx(ld.rms_db(x), abs=1e-9)
    assert meter.sample_peak_db() == pytest.approx(ld.sample_peak_db(x), abs=1e-12)


def test_true_peak_finds_intersample_peaks():
    # a quarter-rate sine sampled 45° off its crests: samples reach 0.707, the waveform reaches 1.0
    n = np.arange(4_800)
    x = np.sin(np.pi / 2 * n + np.pi / 4)
    assert ld.sample_peak_db(x) == pytest.approx(-3.01, abs=0.01)
    assert ld.true_peak_db(x) == pytest.approx(0.0, abs=0.2)  # the abrupt start and end ring a little


def test_measure_lufs_is_none_when_unmeasurable():
    assert ld.measure_lufs(noise(2_400), RATE) is None  # 0.1 s < one 400 ms block
    assert ld.measure_lufs(np.zeros(RATE), RATE) is None
    assert ld.measure_lufs(noise(RATE), RATE) == pytest.approx(
        pyloudnorm.Meter(RATE).integrated_loudness(noise(RATE).astype(np.float64)))  # fmt: skip


def test_normalise_line_falls_back_to_rms_for_short_lines():
    short = noise(2_400, 0.3)
    y, gain = ld.normalise_line(short, RATE, -20.0)
    assert ld.rms_db(y) == pytest.approx(-20.0, abs=1e-6)
    long, _ = ld.normalise_line(noise(RATE, 0.3), RATE, -20.0)
    assert ld.measure_lufs(long, RATE) == pytest.approx(-20.0, abs=0.01)
    silent, gain = ld.normalise_line(np.zeros(100), RATE, -20.0)
    assert gain == 0.0 and not silent.any()


def test_limiter_keeps_true_peak_under_ceiling_and_silence_silent():
    x = speechy(4.0) * 8  # peaks far above full scale
    y = ld.limit_true_peak(x, RATE, -1.0)[:, 0]
    assert ld.true_peak_db(y) <= -1.0 + 0.05
    assert not y[RATE : 2 * RATE].any() and not y[x == 0].any()
    # quiet parts are left alone
    quiet = tone(RATE, amp=0.1)
    assert np.array_equal(ld.limit_true_peak(quiet, RATE, -1.0)[:, 0], quiet.astype(np.float64))


@pytest.mark.parametrize("channels", [1, 2])
def test_normalise_reaches_lufs_target_under_the_ceiling(channels):
    target = ld.LoudnessTarget.from_settings(Settings().loudness)
    y, rep = ld.normalise(speechy(5.0, channels=channels), RATE, target)
    assert y.shape == ((int(5.0 * RATE),) if channels == 1 else (int(5.0 * RATE), 2))
    assert abs(pyloudnorm.Meter(RATE).integrated_loudness(y) + 16.0) <= 0.5
    assert ld.true_peak_db(y) <= -1.0 and rep.limited
    assert rep.lufs == pytest.approx(pyloudnorm.Meter(RATE).integrated_loudness(y))


def test_acx_target_and_check():
    loud = Settings().loudness.model_copy(update={"preset": "acx"})
    target = ld.LoudnessTarget.from_settings(loud)
    assert target.mode == "rms" and target.ceiling_db == -3.0 and -23 < target.level_db < -18
    y, _ = ld.normalise(speechy(5.0), RATE, target)
    check = ld.check_acx(y, RATE, loud)
    assert -23.0 <= check.rms_db <= -18.0 and check.peak_db <= -3.0 and check.ok
    hot = ld.check_acx(tone(RATE, amp=0.99), RATE, loud)
    assert not hot.ok and any("peak" in p for p in hot.problems)
    hissy = ld.check_acx(noise(2 * RATE, 0.05), RATE, loud)
    assert any("noise floor" in p for p in hissy.problems)


def test_silence_is_left_alone():
    target = ld.LoudnessTarget.from_settings(Settings().loudness)
    y, rep = ld.normalise(np.zeros(RATE), RATE, target)
    assert not y.any() and rep.gain_db == 0.0 and rep.lufs is None and math.isinf(rep.rms_db)
