"""Treatments for lines heard through a device, from parentheticals like "(on the radio)" (see pipeline.direction).

Pure functions over mono float32 samples. Each effect is a band limit (Butterworth, zero state, so a line always
sounds the same), after a soft saturation for two-way radio and intercom. Tags without a treatment pass through unchanged.
"""

from __future__ import annotations

import numpy as np

from .iir import butterworth, sosfilt

# tag -> (high-pass Hz or None, low-pass Hz or None, saturation drive or 0)
TREATMENTS: dict[str, tuple[float | None, float | None, float]] = {
    "radio": (400.0, 3000.0, 2.5),
    "phone": (300.0, 3400.0, 0.0),
    "intercom": (250.0, 5000.0, 1.5),
    "broadcast": (120.0, 8000.0, 0.0),
    "muffled": (None, 1200.0, 0.0),
    "offscreen": (180.0, 5000.0, 0.0),  # O.S./O.C.: the band comes from settings.offscreen (see treatments_for)
}


def treatments_for(settings) -> dict[str, tuple[float | None, float | None, float]]:
    """TREATMENTS with the off-screen band taken from `settings.offscreen`."""
    o = settings.offscreen
    return {**TREATMENTS, "offscreen": (o.low_hz or None, o.high_hz, 0.0)}


def effects_gain_db(effects: tuple[str, ...] | list[str], settings) -> float:
    """Level change (dB) a line gets after its loudness normalisation: off-screen lines sit `offscreen.gain_db`
    below the others."""
    return settings.offscreen.gain_db if "offscreen" in effects else 0.0


def _band_limit(x: np.ndarray, rate: int, low: float | None, high: float | None) -> np.ndarray:
    """4th-order Butterworth band-pass, high-pass or low-pass (an edge at or above Nyquist is dropped)."""
    if high is not None and high >= rate / 2:
        high = None
    if low is None and high is None:
        return x
    return sosfilt(butterworth(4, rate, low, high), x)[0]


def apply_effects(samples: np.ndarray, rate: int, effects: tuple[str, ...] | list[str],
                  treatments: dict[str, tuple[float | None, float | None, float]] | None = None) -> np.ndarray:
    """`samples` with every known effect applied in order (float32, same length); `treatments` defaults to
    TREATMENTS (pass `treatments_for(settings)` for the configured off-screen band)."""
    table = TREATMENTS if treatments is None else treatments
    x = np.asarray(samples, dtype=np.float64)
    for tag in effects:
        if tag not in table or x.size == 0:
            continue
        low, high, drive = table[tag]
        if drive:  # saturate first: the band limit then removes the harmonics the saturation adds
            peak = float(np.max(np.abs(x))) or 1.0
            x = np.tanh(drive * x / peak) / np.tanh(drive) * peak
        x = _band_limit(x, rate, low, high)
    return x.astype(np.float32)
