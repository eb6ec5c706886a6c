"""The records a render keeps of the files it wrote (flows.tasks.file_record / files_intact): an untouched file is
trusted from its size and mtime without reading it back; a touched one is compared by sha256."""

from __future__ import annotations

import os

import pytest

import pipeline.keys
from flows.tasks import file_record, files_intact


def _no_reading(monkeypatch):
    monkeypatch.setattr(pipeline.keys, "sha256_file", lambda p: pytest.fail(f"{p} was read back"))


def test_an_untouched_file_is_intact_without_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "master.wav"
    path.write_bytes(b"x" * 1000)
    records = {str(path): file_record(path)}
    _no_reading(monkeypatch)
    assert files_intact(records)


def test_a_touched_file_is_intact_only_with_the_same_bytes(tmp_path):
    path = tmp_path / "scene.wav"
    path.write_bytes(b"abc" * 100)
    records = {str(path): file_record(path)}
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))  # touched, same bytes: kept
    assert files_intact(records)
    path.write_bytes(b"abd" * 100)  # same size, other bytes: rebuilt
    assert not files_intact(records)


def test_a_resized_or_missing_file_is_not_intact(tmp_path):
    path = tmp_path / "subs.srt"
    path.write_text("1\n")
    records = {str(path): file_record(path)}
    path.write_text("")
    assert not files_intact(records)
    path.unlink()
    assert not files_intact(records) and file_record(path) is None and not files_intact({})


def test_records_without_mtime_from_older_results_are_hashed(tmp_path, monkeypatch):
    path = tmp_path / "cues.json"
    path.write_text("{}")
    size, digest, _ = file_record(path)
    assert files_intact({str(path): [size, digest]})
    assert not files_intact({str(path): [size, "0" * 64]})
    _no_reading(monkeypatch)
    with pytest.raises(pytest.fail.Exception):
        files_intact({str(path): [size, digest]})


@pytest.mark.usefixtures("prefect_harness")
def test_a_cached_rerun_reads_back_no_master_and_a_touched_master_is_rebuilt(tmp_path, script, fake, monkeypatch):
    """The WAV master is the scenes' bytes copied (MasterResult.copied): recorded without a sha256, never read
    back; touched since, it is rebuilt from the scenes rather than hashed."""
    from helpers import render_with_report

    out = tmp_path / "out"
    hash_file = pipeline.keys.sha256_file
    read = []
    monkeypatch.setattr(pipeline.keys, "sha256_file", lambda p: read.append(os.fspath(p)) or hash_file(p))
    state, _ = render_with_report(script, out)
    assert state.is_completed(), state.message
    (master,) = out.glob("*.wav")
    assert str(master) not in read and any(p.endswith(".srt") for p in read)  # the other deliverables are hashed
    state, _ = render_with_report(script, out)
    assert state.is_completed(), state.message
    assert str(master) not in read
    st = master.stat()
    os.utime(master, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    state, report = render_with_report(script, out)
    assert state.is_completed(), state.message
    assert str(master) not in read and master.stat().st_mtime_ns != st.st_mtime_ns + 5_000_000  # rebuilt
