"""LineStore: content-addressed, atomic, present only when audio and sidecar both exist."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audio import Audio
from pipeline.keys import content_key
from pipeline.store import LineStore, StoreError


def _audio(n=2400, value=0.1):
    return Audio(np.full(n, value, dtype=np.float32))


def test_put_get_roundtrip(tmp_path):
    store = LineStore(tmp_path)
    key = content_key("line", "1", {"text": "hello"})
    assert not store.has(key)
    path = store.put(key, _audio(), {"tokens": 12, "retakes": 1, "seed": 7, "engine": "instant", "character": "A"})
    assert path == store.path(key) and path.is_file()
    assert store.has(key)
    got = store.get(key)
    assert np.allclose(got.samples, 0.1) and got.sample_rate == 24_000
    meta = store.meta(key)
    assert (meta.tokens, meta.retakes, meta.seed, meta.engine) == (12, 1, 7, "instant")
    assert meta.duration == pytest.approx(0.1)
    assert meta.created.endswith("Z")
    assert meta.extra == {"character": "A"}


def test_line_absent_without_sidecar(tmp_path):
    """Audio is written first; a crash before the sidecar leaves the line absent (it will be re-rendered)."""
    store = LineStore(tmp_path)
    key = content_key("line", "1", {"text": "x"})
    store.put(key, _audio())
    store.sidecar(key).unlink()
    assert store.path(key).is_file()
    assert not store.has(key)
    assert store.missing([key, key]) == [key]
    with pytest.raises(StoreError, match="not in the line store"):
        store.get(key)


def test_no_temp_files_left(tmp_path):
    store = LineStore(tmp_path)
    key = content_key("line", "1", {"text": "y"})
    store.put(key, _audio())
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []


def test_rejects_non_keys(tmp_path):
    with pytest.raises(StoreError, match="Not a content key"):
        LineStore(tmp_path).path("../../etc/passwd")


def test_corrupt_sidecar_names_fix(tmp_path):
    store = LineStore(tmp_path)
    key = content_key("line", "1", {"text": "z"})
    store.put(key, _audio())
    store.sidecar(key).write_text("{nope")
    with pytest.raises(StoreError, match="Delete it"):
        store.meta(key)
