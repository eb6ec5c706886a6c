"""Per-clip measures for audio regression: duration, RMS, peak, loudness, a mean log-mel spectrum, a digest."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import loudness as ld
from ..audio import Audio
from ..audio import mel_filterbank as _mel_filterbank

DB_FLOOR = -120.0  # silence is stored as this, not -inf: JSON has no infinities
N_MELS = 20
_N_FFT = 1024
_HOP = 256
_FMIN = 50.0
_LOUDNESS_MIN_S = 0.4  # one BS.1770 gating block; shorter clips are measured on a loop of themselves



# ----------------------------------------------------------------------------------------------- measurements


def _db(power: float) -> float:
    return round(max(DB_FLOOR, 10.0 * math.log10(power)) if power > 0 else DB_FLOOR, 2)


def mel_filterbank(sample_rate: int, n_fft: int = _N_FFT, n_mels: int = N_MELS, fmin: float = _FMIN) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft//2+1] from `fmin` to Nyquist (`pipeline.audio.mel_filterbank`)."""
    return _mel_filterbank(sample_rate, n_fft, n_mels, fmin)


def mean_log_mel(audio: Audio, n_mels: int = N_MELS) -> tuple[float, ...]:
    """dB of the mean mel-band power over the clip, per band: a compact, loudness-aware spectral summary.

    Power is averaged before the log so silent frames do not dominate. Frames are processed in blocks so a long
    scene never needs its whole spectrogram in memory.
    """
    x = audio.samples.astype(np.float64)
    if len(x) < _N_FFT:
        x = np.pad(x, (0, _N_FFT - len(x)))
    fb = mel_filterbank(audio.sample_rate, _N_FFT, n_mels)
    window = np.hanning(_N_FFT)
    n_frames = 1 + (len(x) - _N_FFT) // _HOP
    total = np.zeros(n_mels)
    block = 2048
    for first in range(0, n_frames, block):
        count = min(block, n_frames - first)
        idx = (first + np.arange(count))[:, None] * _HOP + np.arange(_N_FFT)[None, :]
        spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
        total += (spec @ fb.T).sum(axis=0)
    mean = total / max(n_frames, 1) / _N_FFT
    return tuple(_db(float(p)) for p in mean)


def _floor(value: float) -> float:
    """A level in dB rounded to 0.01, DB_FLOOR for anything lower or not finite (silence is -inf)."""
    return round(max(DB_FLOOR, value), 2) if math.isfinite(value) else DB_FLOOR


def integrated_loudness(audio: Audio) -> float:
    """Integrated loudness (LUFS, BS.1770: pipeline.loudness). A clip shorter than one 400 ms gating block is measured
    on a loop of itself (same mean square, same spectrum); silence gives DB_FLOOR."""
    x = audio.samples.astype(np.float64)
    if len(x) == 0 or not np.any(x):
        return DB_FLOOR
    need = int(math.ceil(_LOUDNESS_MIN_S * audio.sample_rate)) + 1
    if len(x) < need:
        x = np.tile(x, need // len(x) + 1)
    value = ld.measure_lufs(x, audio.sample_rate)
    return DB_FLOOR if value is None else _floor(value)


@dataclass(frozen=True)
class AudioMeasures:
    """What is measured of one clip (a line or a scene)."""

    duration: float
    rms_db: float
    peak_db: float
    loudness: float  # LUFS
    mel_db: tuple[float, ...]
    digest: str  # sha256 of the exact float32 samples and the rate


def measure(audio: Audio) -> AudioMeasures:
    x = audio.samples.astype(np.float64)
    return AudioMeasures(
        duration=round(audio.duration, 4),
        rms_db=_floor(ld.rms_db(x)),
        peak_db=_floor(ld.sample_peak_db(x)),
        loudness=integrated_loudness(audio),
        mel_db=mean_log_mel(audio),
        digest=audio.digest(),
    )
