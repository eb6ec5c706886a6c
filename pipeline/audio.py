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


def write_audio(path: str | Path, audio: Audio, subtype: str | None = None) -> Path:
    """Write WAV/FLAC atomically (format from the suffix). WAV defaults to float32, FLAC to 24-bit PCM."""
    import soundfile as sf

    path = Path(path)
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    subtype = subtype or ("PCM_24" if fmt == "FLAC" else "FLOAT")
    with atomic_path(path) as tmp:
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
