"""Voice lock files: round trip, validation messages, atomic writes, versioned naming, reference hygiene."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pipeline.audio import Audio
from pipeline.errors import VoiceLockError
from pipeline.lock import (
    DIGEST_KEY,
    META_KEY,
    VoiceLock,
    list_locks,
    load_lock,
    lock_path,
    prepare_reference,
    read_header,
    save_lock,
)
from pipeline.files import now_iso, slug

MODEL = "mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16"


def make_lock(name="Marge Simpson", seed=7, **kw) -> VoiceLock:
    rng = np.random.default_rng(seed)
    fields = dict(
        name=name, kind="clone", engine="qwen3", model_id=MODEL, language="en", ref_text="I'll be right there.",
        ref_audio=(rng.standard_normal(4800) * 0.1).astype(np.float32),
        ref_codes=rng.integers(0, 2048, (16, 25)).astype(np.int32),
        x_vector=rng.standard_normal(64).astype(np.float32),
        description="A warm, raspy alto", seed=seed, created="2026-11-29T05:00:00Z", params={"instruct": "calm"})
    fields.update(kw)
    return VoiceLock(**fields)


def write_raw(path: Path, arrays: dict, meta: dict | None, digest: str | None = None) -> Path:
    """A safetensors file written directly, bypassing save_lock's checks."""
    md = {}
    if meta is not None:
        md[META_KEY] = json.dumps(meta)
    if digest is not None:
        md[DIGEST_KEY] = digest
    save_file(arrays, str(path), metadata=md or None)
    return path


def test_round_trip_is_bit_exact(tmp_path):
    lock = make_lock()
    path = save_lock(lock, tmp_path / "m.lock.safetensors")
    back = load_lock(path, expect_model_id=MODEL)
    for k in ("ref_audio", "ref_codes", "x_vector"):
        a, b = getattr(lock, k), getattr(back, k)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert back.digest() == lock.digest()
    assert back.metadata() == lock.metadata()


def test_constructor_coerces_dtypes_so_digest_survives_saving(tmp_path):
    lock = make_lock(ref_audio=np.zeros(100) + 0.25, ref_codes=np.ones((16, 3), dtype=np.int64))
    assert lock.ref_audio.dtype == np.float32 and lock.ref_codes.dtype == np.int32
    assert load_lock(save_lock(lock, tmp_path / "a.lock.safetensors")).digest() == lock.digest()


def test_preset_and_preview_locks_round_trip(tmp_path):
    preset = VoiceLock(name="Bart", kind="preset", engine="qwen3", model_id="cv", params={"speaker": "ryan"})
    preview = VoiceLock(name="Lisa", kind="preview", engine="preview", model_id="espeak-ng",
                        ref_audio=np.zeros(240, np.float32) + 0.1, params={"voice": "en-us", "pitch": 60})
    for lock in (preset, preview):
        back = load_lock(save_lock(lock, tmp_path / f"{lock.name}.lock.safetensors"))
        assert back.digest() == lock.digest() and back.params == lock.params


def test_digest_ignores_name_and_time_but_not_voice():
    a = make_lock()
    assert make_lock(name="Other", created="2020-01-01T00:00:00Z").digest() == a.digest()
    assert make_lock(ref_text="Something else.").digest() != a.digest()
    assert make_lock(seed=8).digest() != a.digest()


def _msg(excinfo) -> str:
    return str(excinfo.value)


def test_wrong_model_id_names_file_voice_and_fix(tmp_path):
    path = save_lock(make_lock(), tmp_path / "m.lock.safetensors")
    with pytest.raises(VoiceLockError) as e:
        load_lock(path, expect_model_id="mlx-community/Qwen3-TTS-12Hz-0.6B-Base-bf16")
    m = _msg(e)
    assert str(path) in m and "Marge Simpson" in m and MODEL in m and "0.6B" in m and "--force" in m


def test_missing_file(tmp_path):
    with pytest.raises(VoiceLockError, match="file not found.*voices list"):
        load_lock(tmp_path / "nope.lock.safetensors")


@pytest.mark.parametrize("cut", [4, 20, -10])
def test_corrupt_file(tmp_path, cut):
    path = save_lock(make_lock(), tmp_path / "m.lock.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(VoiceLockError) as e:
        load_lock(path)
    assert str(path) in _msg(e) and "--force" in _msg(e)


def test_garbage_file(tmp_path):
    path = tmp_path / "g.lock.safetensors"
    path.write_bytes(b"\x00" * 3 + b"hello world" * 10)
    with pytest.raises(VoiceLockError, match="not a readable safetensors"):
        load_lock(path)


def test_not_a_lock(tmp_path):
    path = write_raw(tmp_path / "weights.safetensors", {"w": np.zeros(3, np.float32)}, None)
    with pytest.raises(VoiceLockError, match="not a readthrough voice lock"):
        load_lock(path)


def _raw_from(lock: VoiceLock):
    return dict(lock.arrays()), lock.metadata(), lock.digest()


def test_missing_array(tmp_path):
    arrays, meta, digest = _raw_from(make_lock())
    del arrays["x_vector"]
    path = write_raw(tmp_path / "m.lock.safetensors", arrays, meta, digest)
    with pytest.raises(VoiceLockError, match=r"'Marge Simpson'.*missing arrays \['x_vector'\].*--force"):
        load_lock(path)


@pytest.mark.parametrize("key,value,pattern", [
    ("ref_codes", np.zeros((16, 5), np.int64), "ref_codes.*int64.*expected int32"),
    ("ref_audio", np.zeros(50, np.float64), "ref_audio.*float64.*expected float32"),
    ("x_vector", np.zeros((1, 64), np.float32), r"x_vector.*\[1, 64\].*1 dimension"),
    ("ref_codes", np.zeros((8, 5), np.int32), r"ref_codes has shape \[8, 5\], expected \[16, T\]"),
    ("ref_codes", np.zeros((16, 4, 2), np.int32), "ref_codes.*2 dimension"),
])
def test_wrong_dtype_or_shape(tmp_path, key, value, pattern):
    arrays, meta, digest = _raw_from(make_lock())
    arrays[key] = value
    path = write_raw(tmp_path / "m.lock.safetensors", arrays, meta, digest)
    with pytest.raises(VoiceLockError, match=pattern):
        load_lock(path)


def test_unexpected_array(tmp_path):
    arrays, meta, digest = _raw_from(make_lock())
    arrays["extra"] = np.zeros(2, np.float32)
    with pytest.raises(VoiceLockError, match="unexpected arrays"):
        load_lock(write_raw(tmp_path / "m.lock.safetensors", arrays, meta, digest))


def test_tampered_array_fails_digest(tmp_path):
    path = save_lock(make_lock(), tmp_path / "m.lock.safetensors")
    arrays, meta = load_file(str(path)), read_header(path)[0]
    arrays["ref_codes"] = arrays["ref_codes"].copy()
    arrays["ref_codes"][0, 0] += 1
    save_file(arrays, str(path), metadata=meta)
    with pytest.raises(VoiceLockError, match="do not match the stored digest"):
        load_lock(path)


def test_tampered_metadata_fails_digest(tmp_path):
    arrays, meta, digest = _raw_from(make_lock())
    meta["ref_text"] = "Something I never said."
    with pytest.raises(VoiceLockError, match="digest"):
        load_lock(write_raw(tmp_path / "m.lock.safetensors", arrays, meta, digest))


@pytest.mark.parametrize("change,pattern", [
    ({"format_version": 99}, "format_version 99.*upgrade readthrough"),
    ({"kind": "hologram"}, "unknown lock kind 'hologram'"),
    ({"ref_text": ""}, "empty reference text"),
    ({"model_id": 5}, "'model_id' is missing or not a str"),
    ({"seed": "x"}, "'seed' is missing or not an integer"),
])
def test_bad_metadata(tmp_path, change, pattern):
    arrays, meta, digest = _raw_from(make_lock())
    meta.update(change)
    with pytest.raises(VoiceLockError, match=pattern):
        load_lock(write_raw(tmp_path / "m.lock.safetensors", arrays, meta, digest))


def test_metadata_not_json(tmp_path):
    path = tmp_path / "m.lock.safetensors"
    save_file({"x_vector": np.zeros(3, np.float32)}, str(path), metadata={META_KEY: "{not json"})
    with pytest.raises(VoiceLockError, match="not valid JSON"):
        load_lock(path)


def test_save_refuses_incomplete_clone_lock(tmp_path):
    path = tmp_path / "m.lock.safetensors"
    with pytest.raises(VoiceLockError, match="missing arrays"):
        save_lock(make_lock(x_vector=None), path)
    with pytest.raises(VoiceLockError, match="params\\['speaker'\\]"):
        save_lock(VoiceLock(name="B", kind="preset", engine="qwen3", model_id="cv"), path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    import safetensors.numpy

    path = save_lock(make_lock(), tmp_path / "m.lock.safetensors")
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_lock(make_lock(seed=9), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_lock_path_is_versioned_and_slugged(tmp_path):
    a, b = make_lock(), make_lock(seed=8)
    pa, pb = lock_path(tmp_path, a.name, a.digest()), lock_path(tmp_path, b.name, b.digest())
    assert pa != pb and pa.parent == pb.parent == tmp_path / "marge-simpson"
    assert pa.name == f"marge-simpson-{a.digest()[:12]}.lock.safetensors"
    assert slug("  Dr. Nick!  ") == "dr-nick" and slug("???") == "voice"


def test_list_locks_reads_headers_only(tmp_path, monkeypatch):
    import safetensors.numpy

    locks = [make_lock(), make_lock(seed=8), make_lock(name="Homer")]
    for lock in locks:
        save_lock(lock, lock_path(tmp_path, lock.name, lock.digest()))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "bad.lock.safetensors").write_bytes(b"nope")
    monkeypatch.setattr(safetensors.numpy, "load_file", lambda *a, **k: pytest.fail("list_locks loaded arrays"))
    listed = list_locks(tmp_path)
    good = [m for _, m in listed if "error" not in m]
    assert sorted(m["digest"] for m in good) == sorted(lock.digest() for lock in locks)
    assert {m["name"] for m in good} == {"Marge Simpson", "Homer"}
    assert [p.name for p, m in listed if "error" in m] == ["bad.lock.safetensors"]
    assert list_locks(tmp_path / "missing") == []


def test_now_iso_format():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_iso())


def _tone(seconds, sr=24_000, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_prepare_reference_trims_and_appends_silence():
    sr = 24_000
    rng = np.random.default_rng(0)
    floor = lambda s: (rng.standard_normal(int(s * sr)) * 1e-4).astype(np.float32)  # -74 dB below peak  # noqa: E731
    audio = Audio(np.concatenate([floor(0.7), _tone(1.0), floor(0.4)]), sr)
    out = prepare_reference(audio, silence_s=0.5)
    assert out.sample_rate == sr
    assert 1.5 <= out.duration <= 1.5 + 0.06  # tone + ≤ 2 × (margin + one frame) + 0.5 s tail
    assert np.all(out.samples[-sr // 2:] == 0.0)
    head = out.samples[: int(0.03 * sr)]
    assert np.max(np.abs(head)) > 0.1  # the tone starts within the margin: leading silence is gone
    assert len(out.samples) < len(audio.samples)


def test_prepare_reference_keeps_quiet_speech_above_threshold():
    audio = Audio(np.concatenate([_tone(0.5), _tone(0.5, amp=0.01), np.zeros(24_000, np.float32)]))
    out = prepare_reference(audio, silence_s=0.25, threshold_db=-45.0)
    assert out.duration >= 1.0 + 0.25  # -34 dB part kept, trailing zeros replaced by the 0.25 s tail


def test_prepare_reference_rejects_silence():
    with pytest.raises(VoiceLockError, match="silent"):
        prepare_reference(Audio(np.zeros(24_000, np.float32)))
