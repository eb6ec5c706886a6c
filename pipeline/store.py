"""The content-addressed LineStore: one audio file plus one JSON sidecar per line content key.

Layout: `ROOT/<key[5:7]>/<key>.wav` and `ROOT/<key[5:7]>/<key>.json` (the two hex digits after the `line-` prefix
shard the folder). Writes are atomic and ordered — audio first, then the sidecar — and a line is present only when
both files exist, so an interrupted render never leaves a line that looks finished.

Reads are verified: the sidecar records the sample count, rate and sha256 of the exact samples, and a line whose
audio does not match (truncated, replaced, unreadable) is treated as missing — its files are removed, the reason is
kept in `LineStore.damaged` for the render report, and the line is rendered again. A damaged line is never mixed.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import Audio, read_audio, write_audio
from .errors import ReadthroughError
from .files import atomic_write_json, now_iso, sweep_temps

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
    samples: int | None = None  # sample count of the audio file (None: a sidecar written before verification)
    digest: str | None = None  # Audio.digest() of the exact samples

    def to_json(self) -> dict[str, Any]:
        out = {
            "key": self.key, "duration": self.duration, "sample_rate": self.sample_rate, "tokens": self.tokens,
            "retakes": self.retakes, "seed": self.seed, "engine": self.engine, "created": self.created,
            "samples": self.samples, "digest": self.digest,
        }
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LineMeta":
        known = {k: data[k] for k in ("key", "duration", "sample_rate", "tokens", "retakes", "seed", "engine",
                                      "created", "extra", "samples", "digest") if k in data}
        return cls(**known)


class LineStore:
    """Rendered lines by content key. Safe to share between runs; never holds a half-written line."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.damaged: dict[str, str] = {}  # key -> why its stored files were rejected (this process)
        self._verified: dict[str, tuple] = {}  # key -> (wav size, wav mtime_ns, sidecar mtime_ns) seen good

    @contextlib.contextmanager
    def claim(self, keys):
        """Hold the write claim of every key in `keys` for the block, waiting for any another process holds.

        Renders sharing one store (different output folders, or farm workers) claim a batch before rendering it and
        check `has` again inside: a line another render was writing is then found finished and reused, not rendered
        twice. Claims are `flock`s on `.<key>.claim` files beside the line (taken in sorted order, so two renders
        never deadlock) and die with their process."""
        import fcntl

        held = []
        try:
            for key in sorted(set(keys)):
                path = self._base(key).parent / f".{key}.claim"
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(path, "a+b")
                held.append((path, f))
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            for path, f in held:
                with contextlib.suppress(OSError):
                    path.unlink()  # best effort: a late waiter on the old file only costs a duplicate render
                f.close()

    def sweep(self) -> list[Path]:
        """Remove temp files left by interrupted writes of earlier (dead) processes, and write claims nobody holds;
        returns what was removed."""
        import fcntl

        removed = sweep_temps(self.root)
        for path in self.root.glob("*/.line-*.claim") if self.root.is_dir() else []:
            try:
                with open(path, "a+b") as f:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: its holder is gone
                    path.unlink()
                    removed.append(path)
            except OSError:  # held by a live render, or already gone
                continue
        return removed

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
        """True only when the audio and its sidecar are in place and the audio is exactly what the sidecar recorded.

        A damaged entry (see the module doc) is removed and reported in `self.damaged`; `has` then returns False."""
        wav, side = self.path(key), self.sidecar(key)
        if not (side.is_file() and wav.is_file()):
            return False
        stamp = _stamp(wav, side)
        if stamp is not None and self._verified.get(key) == stamp:
            return True
        problem = self._check(key)
        if problem is not None and _stamp(wav, side) != stamp:  # rewritten while we read it: look again
            stamp = _stamp(wav, side)
            problem = self._check(key)
        if problem is None:
            self._verified[key] = stamp
            return True
        self.damaged[key] = problem
        self._verified.pop(key, None)
        for p in (side, wav):  # sidecar first: the line stops being present before its audio goes
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return False

    def _check(self, key: str) -> str | None:
        """Why the stored files of `key` cannot be used, or None when they match the sidecar."""
        try:
            meta = LineMeta.from_json(json.loads(self.sidecar(key).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:
            return f"unreadable sidecar ({e})"
        try:
            audio = read_audio(self.path(key))
        except Exception as e:  # noqa: BLE001 — soundfile raises its own types for damaged files
            return f"unreadable audio ({type(e).__name__}: {e})"
        if audio.sample_rate != meta.sample_rate:
            return f"sample rate {audio.sample_rate} Hz, the sidecar recorded {meta.sample_rate} Hz"
        expected = meta.samples if meta.samples is not None else round(meta.duration * meta.sample_rate)
        if len(audio.samples) != expected:
            return f"{len(audio.samples)} samples, the sidecar recorded {expected} (truncated or replaced)"
        if meta.digest is not None and audio.digest() != meta.digest:
            return "the samples do not match the recorded digest (the file was changed)"
        return None

    def get(self, key: str) -> Audio:
        if not self.has(key):
            raise self._absent(key)
        return read_audio(self.path(key))

    def _absent(self, key: str) -> StoreError:
        why = f" ({self.damaged[key]})" if key in self.damaged else ""
        return StoreError(f"Line {key} is not in the line store at {self.root}{why}. Render it first.")

    def meta(self, key: str) -> LineMeta:
        if not self.has(key):
            raise self._absent(key)
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
            samples=len(audio.samples),
            digest=audio.digest(),
        )
        path = write_audio(self.path(key), audio)  # audio first ...
        atomic_write_json(self.sidecar(key), record.to_json())  # ... then the sidecar makes the line present
        self.damaged.pop(key, None)
        self._verified[key] = _stamp(path, self.sidecar(key))
        return path

    def missing(self, keys) -> list[str]:
        """The keys (in the given order, without duplicates) that are not in the store."""
        seen: dict[str, None] = {}
        for k in keys:
            if k not in seen and not self.has(k):
                seen[k] = None
        return list(seen)



def _stamp(wav: Path, side: Path) -> tuple | None:
    try:
        a, b = wav.stat(), side.stat()
    except OSError:
        return None
    return (a.st_size, a.st_mtime_ns, a.st_ino, b.st_size, b.st_mtime_ns, b.st_ino)
