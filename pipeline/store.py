"""The content-addressed LineStore: one audio file plus one JSON sidecar per line content key.

Layout: `ROOT/<key[5:7]>/<key>.wav` and `ROOT/<key[5:7]>/<key>.json` (the two hex digits after the `line-` prefix
shard the folder). Writes are atomic and ordered — audio first, then the sidecar — and a line is present only when
both files exist, so an interrupted render never leaves a line that looks finished.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import Audio, read_audio, write_audio
from .errors import ReadthroughError
from .files import atomic_write_json, now_iso

_KEY = re.compile(r"^[a-z][a-z0-9_]*-[0-9a-f]{8,64}$")


class StoreError(ReadthroughError):
    """A line store entry is missing or unreadable."""


@dataclass(frozen=True)
class LineMeta:
    """What the sidecar records about one stored line."""

    key: str
    duration: float
    sample_rate: int
    tokens: int = 0
    retakes: int = 0
    seed: int = 0
    engine: str = ""
    created: str = ""
    extra: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "key": self.key, "duration": self.duration, "sample_rate": self.sample_rate, "tokens": self.tokens,
            "retakes": self.retakes, "seed": self.seed, "engine": self.engine, "created": self.created,
        }
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LineMeta":
        known = {k: data[k] for k in ("key", "duration", "sample_rate", "tokens", "retakes", "seed", "engine",
                                      "created", "extra") if k in data}
        return cls(**known)


class LineStore:
    """Rendered lines by content key. Safe to share between runs; never holds a half-written line."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _base(self, key: str) -> Path:
        if not _KEY.match(key):
            raise StoreError(f"Not a content key: {key!r}. Line keys look like 'line-<hex>' (pipeline.keys).")
        shard = key.split("-", 1)[1][:2]
        return self.root / shard / key

    def path(self, key: str) -> Path:
        """Where the audio of `key` lives (whether or not it exists yet)."""
        return self._base(key).with_suffix(".wav")

    def sidecar(self, key: str) -> Path:
        return self._base(key).with_suffix(".json")

    def has(self, key: str) -> bool:
        """True only when both the audio and its sidecar are in place."""
        return self.sidecar(key).is_file() and self.path(key).is_file()

    def get(self, key: str) -> Audio:
        if not self.has(key):
            raise StoreError(f"Line {key} is not in the line store at {self.root}. Render it first.")
        return read_audio(self.path(key))

    def meta(self, key: str) -> LineMeta:
        if not self.has(key):
            raise StoreError(f"Line {key} is not in the line store at {self.root}. Render it first.")
        path = self.sidecar(key)
        try:
            return LineMeta.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as e:
            raise StoreError(f"{path}: unreadable sidecar ({e}). Delete it and the .wav beside it to re-render.")

    def put(self, key: str, audio: Audio, meta: dict[str, Any] | None = None) -> Path:
        """Store `audio` under `key` with a sidecar (duration, tokens, retakes, seed, engine, created + extras)."""
        meta = dict(meta or {})
        record = LineMeta(
            key=key,
            duration=audio.duration,
            sample_rate=audio.sample_rate,
            tokens=int(meta.pop("tokens", 0)),
            retakes=int(meta.pop("retakes", 0)),
            seed=int(meta.pop("seed", 0)),
            engine=str(meta.pop("engine", "")),
            created=str(meta.pop("created", "")) or now_iso(),
            extra=meta or None,
        )
        path = write_audio(self.path(key), audio)  # audio first ...
        atomic_write_json(self.sidecar(key), record.to_json())  # ... then the sidecar makes the line present
        return path

    def missing(self, keys) -> list[str]:
        """The keys (in the given order, without duplicates) that are not in the store."""
        seen: dict[str, None] = {}
        for k in keys:
            if k not in seen and not self.has(k):
                seen[k] = None
        return list(seen)

