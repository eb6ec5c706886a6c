"""Content keys: sha256 of canonical JSON of everything that determines an artefact, tagged with a version."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept, floats via repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_key(kind: str, version: str, payload: Any) -> str:
    """`<kind>-<sha256 hex[:32]>` of {kind, version, payload}. Changing the version invalidates all keys of a kind."""
    blob = canonical_json({"kind": kind, "version": version, "payload": payload}).encode("utf-8")
    return f"{kind}-{hashlib.sha256(blob).hexdigest()[:32]}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def seed_from_key(key: str, offset: int = 0) -> int:
    """A 31-bit seed derived from a content key: reruns are reproducible."""
    return (int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) + offset) % (2**31 - 1)
