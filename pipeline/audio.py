"""Audio: mono float32 samples at a known rate, and atomic WAV/FLAC I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_path

SAMPLE_RATE = 24_000


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 audio. `samples` is 1-D; stereo only appears in assembled outputs."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self):
        s = np.asarray(self.samples, dtype=np.float32)
        if s.ndim != 1:
            raise ValueError(f"Audio must be mono 1-D, got shape {s.shape}")
        object.__setattr__(self, "samples", s)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def digest(self) -> str:
        """sha256 of the exact float32 samples and the rate."""
        h = hashlib.sha256(str(self.sample_rate).encode())
        h.update(np.ascontiguousarray(self.samples, dtype="<f4").tobytes())
        return h.hexdigest()


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft//2+1] (HTK mel scale, unit peak) from `fmin` to `fmax` (the Nyquist
    frequency when None, and never above it). Small and dependency-free."""
    top = sample_rate / 2 if fmax is None else min(fmax, sample_rate / 2)
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(top), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lo) / np.maximum(mid - lo, 1e-9)
    falling = (hi - bins[None, :]) / np.maximum(hi - mid, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def write_audio(path: str | Path, audio: Audio, subtype: str | None = None) -> Path:
    """Write WAV/FLAC atomically (format from the suffix). WAV defaults to float32, FLAC to 24-bit PCM."""
    import soundfile as sf

    path = Path(path)
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    subtype = subtype or ("PCM_24" if fmt == "FLAC" else "FLOAT")
    with atomic_path(path, needed_bytes=audio.samples.nbytes + 4096) as tmp:
        sf.write(str(tmp), audio.samples, audio.sample_rate, format=fmt, subtype=subtype)
    return path


def read_audio(path: str | Path) -> Audio:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return Audio(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], int(sr))


def resample(audio: Audio, rate: int) -> Audio:
    if audio.sample_rate == rate:
        return audio
    import soxr

    return Audio(soxr.resample(audio.samples, audio.sample_rate, rate).astype(np.float32), rate)


def trim_silence(samples: np.ndarray, rate: int, threshold_db: float = -45.0, pad: float = 0.015,
                 window: float = 0.005) -> np.ndarray:
    """`samples` without leading and trailing silence: everything before the first and after the last `window`
    (5 ms) whose RMS is within `threshold_db` of the loudest window's RMS, keeping `pad` seconds of it at each end.
    Relative, so it works at any level; a silent or empty line is returned unchanged."""
    x = np.asarray(samples)
    n = max(1, int(round(window * rate)))
    frames = len(x) // n
    if frames < 2:
        return x
    energy = np.sqrt(np.mean(np.square(x[: frames * n].astype(np.float64)).reshape(frames, n), axis=1))
    peak = float(energy.max())
    if peak <= 0.0:
        return x
    loud = np.flatnonzero(energy >= peak * 10.0 ** (threshold_db / 20.0))
    keep = int(round(pad * rate))
    start = max(0, int(loud[0]) * n - keep)
    end = min(len(x), (int(loud[-1]) + 1) * n + keep)
    return x[start:end]
