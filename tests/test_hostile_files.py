"""Issue 18.6: hostile and malformed .vox and lock files fail fast with a clear error naming the file; names derived
from character names and headings are bounded and collision-safe."""

from __future__ import annotations

import json
import stat
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_vox import _manifest, _prompt, _wav, make_lock, write_vox  # noqa: E402

from pipeline.errors import VoiceLockError  # noqa: E402
from pipeline.files import SLUG_MAX, slug  # noqa: E402
from pipeline.lock import load_lock, lock_path, save_lock  # noqa: E402
from pipeline.vox import encode_clone_prompt, export_vox, import_vox, read_vox  # noqa: E402

PROMPT = "embeddings/qwen3-tts/1.7b/clone-prompt.bin"
SAMPLE = "embeddings/qwen3-tts/1.7b/sample-audio.wav"
EMB = {"qwen3-tts-1.7b-clone-prompt": {"model": "Qwen/Qwen3-TTS-12Hz-1.7B-Base", "engine": "qwen3-tts",
                                       "file": PROMPT, "format": "bin"}}


def _good_files(prompt: bytes | None = None) -> dict[str, bytes]:
    return {PROMPT: prompt or _prompt("I'll be right there."), SAMPLE: _wav()}


def _refused(path: Path, match: str) -> str:
    started = time.perf_counter()
    with pytest.raises(VoiceLockError, match=match) as info:
        import_vox(path)
    assert time.perf_counter() - started < 5, "a hostile file must fail fast"
    message = str(info.value)
    assert str(path) in message, message  # the error names the file
    return message


def test_good_file_imports(tmp_path):
    lock = import_vox(write_vox(tmp_path / "ok.vox", _manifest(EMB), _good_files()))
    assert lock.kind == "clone" and lock.ref_codes.shape == (16, 5)


@pytest.mark.parametrize("name", ["../../evil.bin", "/etc/passwd", "C:/evil", "a/../../b", "a\\..\\b"])
def test_zip_slip_and_absolute_entries_are_refused(tmp_path, name):
    files = {**_good_files(), name: b"x"}
    _refused(write_vox(tmp_path / "slip.vox", _manifest(EMB), files), "unsafe entry name")


def test_symlink_entry_is_refused(tmp_path):
    path = write_vox(tmp_path / "link.vox", _manifest(EMB), _good_files())
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("embeddings/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    _refused(path, "symbolic link")


def test_manifest_bomb_is_refused_before_decompression(tmp_path):
    path = tmp_path / "bomb.vox"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b" " * (24 * 1024 * 1024))  # 24 MB of spaces → ≈ 24 KB compressed
    assert path.stat().st_size < 1024 * 1024
    _refused(path, "more than|expands")


def test_entry_bomb_is_refused(tmp_path):
    files = {PROMPT: b"\0" * (40 * 1024 * 1024), SAMPLE: _wav()}
    _refused(write_vox(tmp_path / "bomb2.vox", _manifest(EMB), files, zipfile.ZIP_DEFLATED), "more than|expands")


def test_huge_file_is_refused_by_size(tmp_path):
    path = tmp_path / "huge.vox"
    with open(path, "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: costs nothing to make
    _refused(path, "more than a .vox")


@pytest.mark.parametrize("manifest", [
    [1, 2, 3], "voice", {**_manifest(), "voice": "NAME"}, {**_manifest(), "embeddings": [1, 2]},
    {**_manifest(EMB), "extensions": [1]}, {**_manifest(EMB), "extensions": {"readthrough": "x"}},
    {**_manifest(EMB), "voice": {"name": ["x"], "description": "A neutral multilingual announcer voice."}},
])
def test_wrong_typed_manifests_are_clear_errors(tmp_path, manifest):
    path = write_vox(tmp_path / "typed.vox", manifest, _good_files())
    message = _refused(path, "invalid manifest|malformed|clone prompt")
    assert "Traceback" not in message and "AttributeError" not in message.split(":")[0]


def test_deeply_nested_manifest_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.vox"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", "[" * 100_000 + "]" * 100_000)
    _refused(path, "manifest.json")


def test_manifest_size_limit(tmp_path):
    m = _manifest(EMB)
    m["voice"]["description"] = "x" * (2 * 1024 * 1024)
    _refused(write_vox(tmp_path / "big.vox", m, _good_files()), "more than")


def test_reference_codes_out_of_range_or_too_long_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    long = encode_clone_prompt(rng.integers(0, 2048, (16, 1_000_000 // 16)), rng.standard_normal(8), "t", "en")
    _refused(write_vox(tmp_path / "long.vox", _manifest(EMB), _good_files(long)), "frames")
    bad = encode_clone_prompt(np.full((16, 5), 5000), rng.standard_normal(8), "t", "en")
    _refused(write_vox(tmp_path / "range.vox", _manifest(EMB), _good_files(bad)), "vocabulary")
    neg = encode_clone_prompt(np.full((16, 5), -1), rng.standard_normal(8), "t", "en")
    _refused(write_vox(tmp_path / "neg.vox", _manifest(EMB), _good_files(neg)), "vocabulary")


def test_lying_safetensors_header_is_refused(tmp_path):
    import struct

    header = json.dumps({"ref_codes": {"dtype": "I32", "shape": [1, 16, 10**9], "data_offsets": [0, 64]}}).encode()
    codes = struct.pack("<Q", len(header)) + header + bytes(64)
    meta = json.dumps({"hasEmbedding": False, "language": "en", "refCodesSize": len(codes), "refText": "t",
                       "speakerDataSize": 0}).encode()
    blob = struct.pack("<I", len(meta)) + meta + codes
    _refused(write_vox(tmp_path / "lie.vox", _manifest(EMB), _good_files(blob)), "shape")


def test_long_voice_name_gives_bounded_distinct_file_names(tmp_path):
    a, b = "A" * 5000, "A" * 4999 + "B"
    assert len(slug(a)) <= SLUG_MAX and slug(a) != slug(b)
    assert slug("Margaret") == "margaret"  # ordinary names are unchanged
    lock = make_lock(name="M" * 150)
    path = save_lock(lock, lock_path(tmp_path / "locks", "ELENA " * 1000, lock.digest()))
    assert len(path.name) < 100 and load_lock(path).digest() == lock.digest()


def test_lock_name_and_arrays_range_checked(tmp_path):
    for bad, match in ((make_lock(name="x" * 20_001), "longer than"), (make_lock(name="a\nb"), "control"),
                       (make_lock(ref_codes=np.full((16, 5), 9999, np.int32)), "vocabulary"),
                       (make_lock(ref_codes=np.zeros((16, 100_000), np.int32)), "frames"),
                       (make_lock(sample_rate=10**9), "sample_rate")):
        with pytest.raises(VoiceLockError, match=match):
            save_lock(bad, tmp_path / "x.lock.safetensors")


def test_oversized_lock_file_refused_before_reading(tmp_path):
    path = tmp_path / "big.lock.safetensors"
    with open(path, "wb") as f:
        f.truncate(100 * 1024 * 1024)
    with pytest.raises(VoiceLockError, match="more than a lock"):
        load_lock(path)


def test_garbage_lock_headers_are_clear_errors(tmp_path):
    import struct

    for i, header in enumerate([b"[1,2]", b"{\"__metadata__\": [1]}", b"[" * 50_000 + b"]" * 50_000,
                                b"{\"__metadata__\": {\"readthrough_lock\": 5}}"]):
        path = tmp_path / f"g{i}.lock.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header)
        with pytest.raises(VoiceLockError) as info:
            load_lock(path)
        assert str(path) in str(info.value)


def test_long_scene_numbers_give_bounded_distinct_files(tmp_path):
    from flows.render import scene_out_path

    a = scene_out_path(tmp_path, "1" * 5000, "wav")
    b = scene_out_path(tmp_path, "1" * 4999 + "2", "wav")
    assert a != b and len(a.name) < 60
    assert scene_out_path(tmp_path, "1", "wav").name == "scene-001.wav"
    assert scene_out_path(tmp_path, "12A", "wav").name == "scene-12A.wav"
    assert scene_out_path(tmp_path, "../x", "wav").parent == tmp_path / "scenes"


def test_exported_file_still_round_trips(tmp_path):
    lock = make_lock()
    assert import_vox(export_vox(lock, tmp_path / "m.vox")).ref_codes.shape == lock.ref_codes.shape
    assert read_vox(tmp_path / "m.vox").manifest["voice"]["name"] == "Marge"
