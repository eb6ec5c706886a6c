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
    with pytest.raises(StoreError, match="unreadable sidecar"):
        store.meta(key)
    assert not store.sidecar(key).exists()  # a damaged entry is removed: the next render makes it again


# ---- issue 18.2: verified reads


def _stored(tmp_path, n=4800):
    store = LineStore(tmp_path)
    key = content_key("line", "1", {"text": f"verified {n}"})
    audio = Audio(np.sin(np.arange(n, dtype=np.float32) / 7.0) * 0.3)
    store.put(key, audio)
    return LineStore(tmp_path), key, audio  # a fresh store: what the next run sees


def test_sidecar_records_sample_count_rate_and_digest(tmp_path):
    store, key, audio = _stored(tmp_path)
    meta = store.meta(key)
    assert (meta.samples, meta.sample_rate, meta.digest) == (4800, 24_000, audio.digest())


def test_truncated_line_file_is_missing_and_named(tmp_path):
    store, key, _ = _stored(tmp_path)
    wav = store.path(key)
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])  # half-truncated: still a readable WAV with fewer frames
    assert not store.has(key)
    assert store.missing([key]) == [key]
    assert "truncated" in store.damaged[key] or "unreadable" in store.damaged[key]
    assert not wav.exists() and not store.sidecar(key).exists()
    with pytest.raises(StoreError, match="not in the line store"):
        store.get(key)


def test_same_length_different_samples_is_missing(tmp_path):
    import soundfile as sf

    store, key, audio = _stored(tmp_path)
    sf.write(str(store.path(key)), audio.samples[::-1].copy(), 24_000, subtype="FLOAT")
    assert not store.has(key)
    assert "digest" in store.damaged[key]


def test_unreadable_line_file_is_missing_not_an_error(tmp_path):
    store, key, _ = _stored(tmp_path)
    store.path(key).write_bytes(b"RIFF\0\0\0\0garbage")
    assert not store.has(key)  # never raises: the line is rendered again
    assert "unreadable audio" in store.damaged[key]
    good = _audio()
    store.put(key, good)
    assert store.has(key) and key not in store.damaged


def test_intact_line_is_verified_once_per_process(tmp_path, monkeypatch):
    store, key, audio = _stored(tmp_path)
    assert store.has(key)
    calls = []
    monkeypatch.setattr(store, "_check", lambda k: calls.append(k))
    assert store.has(key) and calls == []  # unchanged files are not read again


# ---- issue 18.8: temp files of interrupted writes


def test_sweep_removes_only_our_dead_temp_files(tmp_path):
    import os
    import subprocess
    import sys

    from pipeline.files import TEMP_PREFIX, _host

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    store = LineStore(tmp_path)
    shard = tmp_path / "ab"
    shard.mkdir()
    ours_dead = shard / f"{TEMP_PREFIX}{_host()}.{dead}.line-ab12.wav.x1y2z3.wav"
    ours_live = shard / f"{TEMP_PREFIX}{_host()}.{os.getpid()}.line-ab34.wav.q1w2e3.wav"
    not_ours = shard / ".line-ab56.wav.abc123.wav"
    user_file = shard / "notes.txt"
    for p in (ours_dead, ours_live, not_ours, user_file):
        p.write_bytes(b"x")
    assert store.sweep() == [ours_dead]
    assert not ours_dead.exists() and ours_live.exists() and not_ours.exists() and user_file.exists()



# ---- issue 18.11: write claims shared by renders


def test_a_line_another_render_is_writing_is_waited_for_and_reused(tmp_path):
    import threading
    import time

    from pipeline.engines.instant import InstantEngine
    from pipeline.render import LineJob, render_missing

    class Counting(InstantEngine):
        keys: list = []

        def render(self, lock, jobs):
            self.keys.extend(j.key for j in jobs)
            return super().render(lock, jobs)

    engine = Counting()
    audio = engine.design("a calm voice", "Hello there.", [1])[0]
    lock = engine.lock(audio, "Hello there.", name="A", description="a calm voice", seed=1)
    key = content_key("line", "1", {"text": "shared"})
    job = LineJob(key=key, scene_index=0, heading=None, character="A", voice_digest="v", text="Shared line.",
                  instruct=None, seed=1)
    store = LineStore(tmp_path)
    claimed = threading.Event()

    def other_render():
        with LineStore(tmp_path).claim([key]):
            claimed.set()
            time.sleep(0.5)
            LineStore(tmp_path).put(key, _audio())

    t = threading.Thread(target=other_render)
    t.start()
    claimed.wait(5)
    summary = render_missing(engine, store, [job], {"v": lock})
    t.join()
    assert engine.keys == [] and summary.rendered == () and summary.reused == (key,)
    assert not list(tmp_path.rglob("*.claim"))


def test_sweep_removes_claims_nobody_holds(tmp_path):
    store = LineStore(tmp_path)
    key = content_key("line", "1", {"text": "c"})
    stale = store.path(key).parent / f".{key}.claim"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    with store.claim([content_key("line", "1", {"text": "held"})]):
        held = list(tmp_path.rglob("*.claim"))
        removed = store.sweep()
        assert stale in removed and all(p.exists() for p in held if p != stale)
