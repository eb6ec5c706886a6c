"""Synthetic line audio for assembly tests: signals of exact length with no zero samples inside, so every line's
start and end can be found again in a mixed file as the edges of a non-zero run. Also independent readers of the
chapter markers pipeline.deliver writes (WAV cue points, FLAC cue sheets)."""

from __future__ import annotations

import struct
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


def read_wav_chapters(path: str | Path) -> list[tuple[int, str]]:
    """(sample offset, label) per cue point of a WAV file, in cue order."""
    data = Path(path).read_bytes()
    points: dict[int, int] = {}
    labels: dict[int, str] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"cue ":
            (count,) = struct.unpack("<I", body[:4])
            for k in range(count):
                ident, _, _, _, _, offset = struct.unpack("<II4sIII", body[4 + 24 * k : 28 + 24 * k])
                points[ident] = offset
        elif cid == b"LIST" and body[:4] == b"adtl":
            sub = 4
            while sub + 8 <= len(body):
                sid, ssize = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                if sid == b"labl":
                    (ident,) = struct.unpack("<I", body[sub + 8 : sub + 12])
                    labels[ident] = body[sub + 12 : sub + 8 + ssize].rstrip(b"\0").decode("utf-8", "replace")
                sub += 8 + ssize + (ssize % 2)
        pos += 8 + size + (size % 2)
    return [(points[i], labels.get(i, "")) for i in sorted(points)]


def read_flac_chapters(path: str | Path) -> list[tuple[int, str]]:
    """(start sample, name) per chapter, from the CUESHEET block when present, else from CHAPTERxxx comments."""
    from mutagen.flac import FLAC

    audio = FLAC(str(path))
    names = [audio.get(f"CHAPTER{n:03d}NAME", [""])[0] for n in range(1, 1000) if f"CHAPTER{n:03d}" in audio]
    if audio.cuesheet is not None:
        tracks = [t for t in audio.cuesheet.tracks if t.track_number != 255]
        return [(t.start_offset, names[i] if i < len(names) else "") for i, t in enumerate(tracks)]
    rate = audio.info.sample_rate
    out = []
    for n, name in enumerate(names, 1):
        h, m, s = audio[f"CHAPTER{n:03d}"][0].split(":")
        out.append((round((int(h) * 3600 + int(m) * 60 + float(s)) * rate), name))
    return out
