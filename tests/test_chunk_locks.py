"""A render chunk's voice locks (flows.tasks.chunk_locks): each chunk gets its voices, the previous chunk's shared
voices are reused, and a voice no chunk needs any more is let go (a lock carries its reference audio)."""

from __future__ import annotations

import gc
import os
import weakref

import numpy as np
import pytest

import pipeline.lock
from flows.tasks import chunk_locks, release_chunk_locks
from pipeline.lock import VoiceLock, save_lock


@pytest.fixture
def voices(tmp_path):
    """{digest: lock path} of three saved preview-kind voices, each with a second of reference audio."""
    paths = {}
    for n, name in enumerate(("ANNA", "BEN", "CARL")):
        lock = VoiceLock(name=name, kind="preview", engine="preview", model_id="espeak-ng 1", seed=n,
                         ref_audio=np.full(24_000, 0.01 * (n + 1), np.float32),
                         params={"variant": "m1", "pitch": 50, "range": 50, "rate": 165})
        paths[lock.digest()] = str(save_lock(lock, tmp_path / f"{name}.lock.safetensors"))
    yield paths
    release_chunk_locks()


@pytest.fixture
def loads(monkeypatch):
    """The lock files read, in order."""
    read: list[str] = []
    real = pipeline.lock.load_lock_as

    def counting(path, digest):
        read.append(digest)
        return real(path, digest)

    monkeypatch.setattr(pipeline.lock, "load_lock_as", counting)
    return read


def test_a_chunk_gets_the_locks_of_its_voices(voices, loads):
    a, b, _ = voices
    got = chunk_locks({**voices, "not-cast": ""}, {a, b, "not-cast"})
    assert set(got) == {a, b} and all(lock.digest() == d for d, lock in got.items())
    assert sorted(loads) == sorted([a, b])


def test_the_next_chunk_reuses_shared_voices_and_lets_the_others_go(voices, loads):
    a, b, c = voices
    first = chunk_locks(voices, {a, b})
    gone, shared = weakref.ref(first[a]), first[b]
    del first
    second = chunk_locks(voices, {b, c})
    assert second[b] is shared and loads.count(b) == 1  # not read again
    gc.collect()
    assert gone() is None, "a voice the running chunk does not use is still held"


def test_releasing_after_the_last_chunk_holds_no_voice(voices):
    a, b, _ = voices
    held = [weakref.ref(lock) for lock in chunk_locks(voices, {a, b}).values()]
    release_chunk_locks()
    gc.collect()
    assert all(ref() is None for ref in held)


def test_a_lock_file_changed_since_is_read_again(voices, loads):
    a, *_ = voices
    chunk_locks(voices, {a})
    st = os.stat(voices[a])
    os.utime(voices[a], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # rewritten: its stat no longer matches
    chunk_locks(voices, {a})
    assert loads.count(a) == 2


@pytest.mark.usefixtures("prefect_harness")
def test_a_render_stopped_between_chunks_lets_its_voices_go(tmp_path, script, fake, monkeypatch):
    """Ctrl-C (or any error) between two chunks: the chunk's locks are not kept after the render."""
    import flows.render
    import flows.tasks
    from flows.render import render_flow

    held = []

    def stop(n, total):
        held.append(len(flows.tasks._CHUNK_LOCKS))
        raise RuntimeError("stopped between chunks")

    monkeypatch.setattr(flows.render, "between_chunks", stop)
    state = render_flow(str(script), str(tmp_path / "out"), engine="fake", return_state=True,
                        overrides={"render.chunk_lines": 3})
    assert not state.is_completed()
    assert held and held[0] > 0  # the first chunk's voices were held while it ran
    assert flows.tasks._CHUNK_LOCKS == {}
