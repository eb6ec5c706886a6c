"""Issue 18.9: disk-full and permission errors are one clear line naming the path (never another line's temp file)
and the free space; soundfile's LibsndfileError is caught like an OSError; a UTF-16 script is read correctly."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from pipeline.audio import Audio, write_audio
from pipeline.files import TEMP_PREFIX, WriteError, atomic_write_bytes


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_script_is_read(tmp_path, sample_script, encoding):
    from pipeline.fountain import read_script

    text = sample_script.read_text(encoding="utf-8")
    path = tmp_path / "wide.fountain"
    path.write_bytes(text.encode(encoding))
    assert read_script(path).structure() == read_script(sample_script).structure()


def test_binary_file_still_refused(tmp_path):
    from pipeline.errors import ScriptError
    from pipeline.fountain import read_script

    path = tmp_path / "x.fountain"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ScriptError, match="binary data"):
        read_script(path)


def _full_disk(*args, **kwargs):
    import soundfile

    raise soundfile.LibsndfileError(2)  # SF_ERR_SYSTEM: "System error." — what a full disk gives


@pytest.fixture
def no_space(monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2048, 2048))


def test_libsndfile_disk_full_is_an_oserror_naming_the_target(tmp_path, monkeypatch, no_space):
    import soundfile

    monkeypatch.setattr(soundfile, "write", _full_disk)
    target = tmp_path / "lines" / "ab" / "line-ab12.wav"
    with pytest.raises(OSError) as info:
        write_audio(target, Audio(np.zeros(100, np.float32)))
    message = str(info.value)
    assert isinstance(info.value, WriteError)
    assert str(target) in message and TEMP_PREFIX not in message  # our path, not the temp file's
    assert "disk full" in message and "free" in message and "needed" in message and "\n" not in message
    assert not any(p.name.startswith(TEMP_PREFIX) for p in target.parent.iterdir())


def test_disk_full_and_permission_messages(tmp_path, monkeypatch):
    def enospc(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_bytes", enospc)
    with pytest.raises(WriteError, match=r"disk full \(.* free") as info:
        atomic_write_bytes(tmp_path / "out" / "x.srt", b"abc")
    assert str(tmp_path / "out" / "x.srt") in str(info.value)
    monkeypatch.undo()
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(WriteError, match="permission denied"):
            atomic_write_bytes(ro / "x.srt", b"abc")


def test_a_full_disk_fails_each_line_with_its_own_path(tmp_path, monkeypatch, no_space):
    """render_missing: every line that cannot be stored names its own store path, the others are unaffected."""
    import soundfile

    from pipeline.engines.instant import InstantEngine
    from pipeline.render import LineJob, render_missing
    from pipeline.store import LineStore

    engine = InstantEngine()
    audio = engine.design("a calm voice", "Hello there.", [1])[0]
    lock = engine.lock(audio, "Hello there.", name="A", description="a calm voice", seed=1)
    keys = [f"line-{i:02d}{'0' * 30}" for i in range(3)]
    jobs = [LineJob(key=k, scene_index=0, heading=None, character="A", voice_digest="v", text=f"Line {i}.",
                    instruct=None, seed=i) for i, k in enumerate(keys)]
    real = soundfile.write
    calls = []

    def flaky(file, *a, **kw):
        calls.append(file)
        if len(calls) == 2:
            return _full_disk()
        return real(file, *a, **kw)

    monkeypatch.setattr(soundfile, "write", flaky)
    store = LineStore(tmp_path / "lines")
    summary = render_missing(engine, store, jobs, {"v": lock})
    assert len(summary.rendered) == 2 and len(summary.failed) == 1
    [failure] = summary.failed
    assert str(store.path(failure.key)) in failure.reason and "disk full" in failure.reason
    assert TEMP_PREFIX not in failure.reason
