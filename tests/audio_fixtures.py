"""Synthetic line audio for assembly tests: signals of exact length with no zero samples inside, so every line's
start and end can be found again in a mixed file as the edges of a non-zero run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.assemble import MixLine

RATE = 24_000


def noise(frames: int, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    """Random signs with magnitudes in [0.5, 1] × amp: loud enough to measure, never exactly zero."""
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], frames) * rng.uniform(0.5, 1.0, frames) * amp).astype(np.float32)


def tone(frames: int, freq: float = 440.0, amp: float = 0.2, rate: int = RATE) -> np.ndarray:
    return (amp * np.cos(2 * np.pi * freq * np.arange(frames) / rate)).astype(np.float32)


def write_line(folder: Path, name: str, samples: np.ndarray, rate: int = RATE) -> Path:
    path = Path(folder) / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype="FLOAT")
    return path


def line(folder: Path, key: str, character: str, frames: int, *, seed: int = 0, amp: float = 0.1, **kw) -> MixLine:
    """A MixLine whose audio is `frames` samples of noise written to folder/key.wav."""
    path = write_line(folder, key, noise(frames, amp, seed))
    return MixLine(key=key, character=character, text=f"{character} says {key}.", audio_path=path, **kw)


def runs(x: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of non-zero samples (any channel)."""
    nz = np.any(np.atleast_2d(x.T).T != 0, axis=1) if x.ndim > 1 else x != 0
    edges = np.diff(np.concatenate([[0], nz.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
