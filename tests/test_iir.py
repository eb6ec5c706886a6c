"""pipeline.iir: the band-limit and K-weighting filters without scipy.signal, checked against scipy.signal and
pyloudnorm (the references stay installed for tests); and the mixing code never importing scipy.signal."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from pipeline import iir, loudness as ld
from pipeline.effects import TREATMENTS

RATES = (16000, 22050, 24000, 44100, 48000)


def _noise(n: int, channels: int | None = None, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n if channels is None else (n, channels))


def test_the_compiled_kernel_is_used():
    iir._KERNEL.clear()
    assert iir.kernel() is not iir._scipy_signal_kernel
    assert iir.kernel().__module__ == "scipy.signal._sosfilt"


@pytest.mark.parametrize("use", ["compiled", "fallback"])
def test_sosfilt_equals_scipy_bit_for_bit(use, monkeypatch):
    if use == "fallback":
        monkeypatch.setattr(iir, "_KERNEL", [iir._scipy_signal_kernel])
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=24000, output="sos")
    x = _noise(20000)
    assert np.array_equal(iir.sosfilt(sos, x)[0], signal.sosfilt(sos, x))
    zi = _noise(len(sos) * 2, seed=1).reshape(len(sos), 2)
    kept = zi.copy()
    y, zf = iir.sosfilt(sos, x, zi=zi)
    ry, rzf = signal.sosfilt(sos, x, zi=zi)
    assert np.array_equal(y, ry) and np.array_equal(zf, rzf) and zf.shape == zi.shape
    assert np.array_equal(zi, kept)  # the caller's state is not filtered in place
    stereo, zi2 = _noise(5000, 2), _noise(len(sos) * 4, seed=2).reshape(len(sos), 2, 2)
    y, zf = iir.sosfilt(sos, stereo, zi=zi2)
    ry, rzf = signal.sosfilt(sos, stereo, axis=0, zi=zi2)
    assert np.array_equal(y, ry) and np.array_equal(zf, rzf) and y.shape == stereo.shape


def test_state_carries_across_blocks():
    sos = iir.k_weighting(24000)
    x = _noise(9000)
    whole = iir.sosfilt(sos, x)[0]
    a, za = iir.sosfilt(sos, x[:4000])
    b, _ = iir.sosfilt(sos, x[4000:], zi=za)
    assert np.array_equal(np.concatenate([a, b]), whole)


def _scipy_butter(rate: int, low: float | None, high: float | None) -> np.ndarray:
    if low is not None and high is not None:
        return signal.butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
    if low is not None:
        return signal.butter(4, low, btype="highpass", fs=rate, output="sos")
    return signal.butter(4, high, btype="lowpass", fs=rate, output="sos")


BANDS = sorted({(low, high) for low, high, _ in TREATMENTS.values()} | {(180.0, None), (None, 3000.0)}, key=str)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("low,high", BANDS)
def test_butterworth_is_scipys_filter(rate, low, high):
    if high is not None and high >= rate / 2:
        high = None  # as effects._band_limit drops it
    ref, ours = _scipy_butter(rate, low, high), iir.butterworth(4, rate, low, high)
    assert ours.shape == ref.shape
    _, h_ref = signal.sosfreqz(ref, 2048, fs=rate)
    _, h_ours = signal.sosfreqz(ours, 2048, fs=rate)
    assert np.max(np.abs(h_ours - h_ref)) < 1e-9
    x = _noise(24000)
    y_ref = signal.sosfilt(ref, x)
    assert np.max(np.abs(iir.sosfilt(ours, x)[0] - y_ref)) < 1e-9 * np.max(np.abs(y_ref))


def test_butterworth_refuses_what_it_cannot_design():
    with pytest.raises(ValueError, match="even"):
        iir.butterworth(3, 24000, 300, 3000)
    with pytest.raises(ValueError, match="edge"):
        iir.butterworth(4, 24000)
    for low, high in ((2000, 1500), (300, 12000), (0, 3000)):
        with pytest.raises(ValueError, match="between 0 and 12000 Hz, low below high"):
            iir.butterworth(4, 24000, low, high)


@pytest.mark.parametrize("rate", RATES)
def test_k_weighting_is_pyloudnorms_bit_for_bit(rate):
    from pyloudnorm.iirfilter import IIRfilter

    ref = []
    for f in (IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"),
              IIRfilter(0.0, 0.5, 38.0, rate, "high_pass")):  # fmt: skip
        b, a = np.asarray(f.b, float) * f.passband_gain, np.asarray(f.a, float)
        ref.append(np.concatenate([b / a[0], a / a[0]]))
    assert np.array_equal(iir.k_weighting(rate), np.array(ref))


def test_loudness_matches_pyloudnorm():
    import pyloudnorm

    x = 0.1 * _noise(3 * 24000)
    assert ld.measure_lufs(x, 24000) == pytest.approx(pyloudnorm.Meter(24000).integrated_loudness(x), abs=1e-9)


def test_oversampling_filter_is_resample_polys():
    assert np.array_equal(ld._oversampling_fir(), signal.firwin(81, 0.25, window=("kaiser", 5.0)))


@pytest.mark.parametrize("channels", [1, 2])
def test_oversampled_values_are_resample_polys(channels):
    x = _noise(5000, channels) * 0.3
    ref = np.abs(signal.resample_poly(x, ld.OVERSAMPLE, 1, axis=0)).max(axis=1)
    assert np.max(np.abs(ld._oversampled_abs(x) - ref)) < 1e-12
    interleaved = ref.reshape(-1, ld.OVERSAMPLE).max(axis=1)
    assert np.max(np.abs(ld.envelope(x) - np.maximum(interleaved, np.abs(x).max(axis=1)))) < 1e-12


MIX_WITHOUT_SCIPY_SIGNAL = r"""
import json, sys
import numpy as np
from pipeline import assemble, leveller, loudness as ld
from pipeline.effects import apply_effects, TREATMENTS
rng = np.random.default_rng(0)
x = (0.3 * rng.standard_normal(24000 * 3)).astype(np.float32)
for tag in TREATMENTS:
    apply_effects(x, 24000, [tag])
leveller.normalise_array(x, 24000, ld.LoudnessTarget("lufs", -16.0, -1.0))
ld.measure_lufs(x, 24000), ld.true_peak_db(x), ld.envelope(x)
meter = ld.StreamingMeter(24000, 1)
meter.feed(x)
meter.blocks()
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("scipy.signal", "pyloudnorm")))))
"""


def test_mixing_never_imports_scipy_signal():
    """Effects, normalisation, metering and true peak in a fresh interpreter leave scipy.signal (about 50 MiB a
    render would otherwise hold) and pyloudnorm unloaded; only scipy's compiled biquad kernel is there."""
    out = subprocess.run([sys.executable, "-c", MIX_WITHOUT_SCIPY_SIGNAL], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["scipy.signal._sosfilt"]
