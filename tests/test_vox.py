""".vox import/export (vox-format 0.4.0), clone-prompt.bin layout, reader lookup order, and `readthrough voices`."""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load as st_load

from pipeline.errors import VoiceLockError
from pipeline.lock import VoiceLock, list_locks, load_lock, lock_path, save_lock
from pipeline.vox import (
    decode_clone_prompt,
    encode_clone_prompt,
    export_vox,
    find_clone_prompt,
    import_vox,
    model_size,
    read_vox,
    validate_manifest,
)

MODEL_17 = "mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16"
MODEL_06 = "mlx-community/Qwen3-TTS-12Hz-0.6B-Base-bf16"
UUID = "c4f5a6b7-8d9e-4f0a-b1c2-d3e4f5a6b7c8"


def make_lock(name="Marge", seed=3, **kw) -> VoiceLock:
    rng = np.random.default_rng(seed)
    fields = dict(
        name=name, kind="clone", engine="qwen3", model_id=MODEL_17, language="en", ref_text="I'll be right there.",
        ref_audio=(rng.standard_normal(4800) * 0.2).clip(-1, 1).astype(np.float32),
        ref_codes=rng.integers(0, 2048, (16, 30)).astype(np.int32),
        x_vector=rng.standard_normal(64).astype(np.float32),
        description="A warm, raspy alto with a patient lilt.", seed=seed, created="2026-11-29T05:00:00Z",
        params={"audition": 2})
    fields.update(kw)
    return VoiceLock(**fields)


# ---------------------------------------------------------------- clone-prompt.bin


def test_clone_prompt_layout():
    lock = make_lock()
    data = encode_clone_prompt(lock.ref_codes, lock.x_vector, lock.ref_text, "en")
    (n,) = struct.unpack("<I", data[:4])
    meta_text = data[4 : 4 + n].decode()
    meta = json.loads(meta_text)
    assert list(meta) == sorted(meta) == ["hasEmbedding", "language", "refCodesSize", "refText", "speakerDataSize"]
    assert meta["hasEmbedding"] is True and meta["refText"] == lock.ref_text
    codes = st_load(data[4 + n : 4 + n + meta["refCodesSize"]])["ref_codes"]
    spk = st_load(data[4 + n + meta["refCodesSize"] :])["speaker_embedding"]
    assert len(data) == 4 + n + meta["refCodesSize"] + meta["speakerDataSize"]
    assert codes.shape == (1, 16, 30) and np.array_equal(codes[0], lock.ref_codes)
    assert spk.shape == (1, 64) and np.array_equal(spk[0], lock.x_vector)
    back = decode_clone_prompt(data)
    assert np.array_equal(back.ref_codes, lock.ref_codes) and np.array_equal(back.x_vector, lock.x_vector)
    assert back.ref_text == lock.ref_text and back.language == "en"


def _bf16_safetensors(name: str, values: np.ndarray) -> bytes:
    raw = (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({name: {"dtype": "BF16", "shape": list(values.shape), "data_offsets": [0, len(raw)]}})
    header += " " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header.encode() + raw


def test_decode_accepts_bf16_speaker_embedding():
    from safetensors.numpy import save

    codes = save({"ref_codes": np.arange(16 * 4, dtype=np.int32).reshape(1, 16, 4)})
    xv = np.array([[1.0, -2.5, 0.15625]], dtype=np.float32)  # exactly representable in bf16
    spk = _bf16_safetensors("speaker_embedding", xv)
    meta = json.dumps({"hasEmbedding": True, "language": "english", "refCodesSize": len(codes), "refText": "Hi.",
                       "speakerDataSize": len(spk)}, sort_keys=True).encode()
    back = decode_clone_prompt(struct.pack("<I", len(meta)) + meta + codes + spk)
    assert back.x_vector.dtype == np.float32 and np.array_equal(back.x_vector, xv[0])
    assert back.ref_codes.shape == (16, 4)


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff\x00{}", struct.pack("<I", 2) + b"{}"])
def test_decode_rejects_malformed(data):
    with pytest.raises(ValueError):
        decode_clone_prompt(data)


# ---------------------------------------------------------------- export


def test_export_structure(tmp_path):
    path = export_vox(make_lock(), tmp_path / "marge.vox", gender="female", age_range=(35, 45), tags=["warm"])
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        raw_manifest = zf.read("manifest.json").decode()
        wav = zf.read("embeddings/qwen3-tts/1.7b/sample-audio.wav")
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    assert names == ["manifest.json", "embeddings/qwen3-tts/1.7b/clone-prompt.bin",
                     "embeddings/qwen3-tts/1.7b/sample-audio.wav"]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    m = json.loads(raw_manifest)
    assert raw_manifest == json.dumps(m, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert validate_manifest(m) == []
    assert m["vox_version"] == "0.4.0"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", m["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["created"])
    assert m["voice"]["gender"] == "female" and m["voice"]["age_range"] == [35, 45] and m["voice"]["tags"] == ["warm"]
    assert m["provenance"]["method"] == "designed"
    assert m["embeddings"] == {
        "qwen3-tts-1.7b-clone-prompt": {
            "model": MODEL_17, "engine": "qwen3-tts", "format": "bin",
            "file": "embeddings/qwen3-tts/1.7b/clone-prompt.bin",
            "description": "Clone prompt for the 1.7B Base model"},
        "qwen3-tts-1.7b-sample-audio": {
            "model": MODEL_17, "engine": "qwen3-tts", "format": "wav",
            "file": "embeddings/qwen3-tts/1.7b/sample-audio.wav",
            "description": "Reference audio for the 1.7B clone prompt"},
    }
    import soundfile as sf

    info = sf.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.subtype) == (24_000, 1, "PCM_16")


def test_export_language_segment_and_padded_description(tmp_path):
    lock = make_lock(model_id=MODEL_06, language="es", description="Calm")
    m = read_vox(export_vox(lock, tmp_path / "v.vox")).manifest
    assert set(m["embeddings"]) == {"qwen3-tts-0.6b-es-clone-prompt", "qwen3-tts-0.6b-es-sample-audio"}
    e = m["embeddings"]["qwen3-tts-0.6b-es-clone-prompt"]
    assert e["file"] == "embeddings/qwen3-tts/0.6b/es/clone-prompt.bin" and e["language"] == "es"
    assert len(m["voice"]["description"]) >= 10 and "Calm" in m["voice"]["description"]
    # English variants are the default: no language segment
    m = read_vox(export_vox(make_lock(language="en-US"), tmp_path / "e.vox")).manifest
    assert set(m["embeddings"]) == {"qwen3-tts-1.7b-clone-prompt", "qwen3-tts-1.7b-sample-audio"}


def test_model_size_sources(tmp_path):
    assert model_size(MODEL_06) == "0.6b" and model_size("Qwen/Qwen3-TTS-12Hz-1.7B") == "1.7b"
    with pytest.raises(VoiceLockError):
        model_size("/tmp/tmp93b_x/base")  # digits before a "b" in a temp name are not a size
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text(json.dumps({"tts_model_size": "0b6"}))
    assert model_size(str(tmp_path / "base")) == "0.6b"
    assert model_size(str(tmp_path / "nowhere"), size="1.7b") == "1.7b"
    with pytest.raises(VoiceLockError, match="size"):
        model_size(str(tmp_path / "nowhere"))


def test_export_tiny_local_model_uses_config_size(tmp_path):
    base = tmp_path / "models" / "base"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"tts_model_size": "0b6"}))
    m = read_vox(export_vox(make_lock(model_id=str(base)), tmp_path / "t.vox")).manifest
    assert "qwen3-tts-0.6b-clone-prompt" in m["embeddings"]


def test_only_clone_locks_export(tmp_path):
    preset = VoiceLock(name="Bart", kind="preset", engine="qwen3", model_id="cv", params={"speaker": "ryan"})
    with pytest.raises(VoiceLockError, match="'Bart' is a preset lock; only clone locks export"):
        export_vox(preset, tmp_path / "b.vox")
    assert not (tmp_path / "b.vox").exists()


def test_export_is_atomic(tmp_path, monkeypatch):
    import pipeline.vox as vox

    out = tmp_path / "m.vox"
    out.write_bytes(b"old")
    monkeypatch.setattr(vox, "_wav_pcm16", lambda lock: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        export_vox(make_lock(), out)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.vox"]


# ---------------------------------------------------------------- import


def test_export_import_round_trip(tmp_path):
    lock = make_lock()
    back = import_vox(export_vox(lock, tmp_path / "m.vox"))
    assert np.array_equal(back.ref_codes, lock.ref_codes) and back.ref_codes.dtype == np.int32
    assert np.array_equal(back.x_vector, lock.x_vector) and back.x_vector.dtype == np.float32
    assert back.ref_text == lock.ref_text and back.name == lock.name and back.model_id == MODEL_17
    assert back.kind == "clone" and back.seed == lock.seed and back.params == lock.params
    assert back.description == lock.description and back.language == "en" and back.sample_rate == 24_000
    assert np.max(np.abs(back.ref_audio - lock.ref_audio)) <= 1 / 32768 + 1e-7  # PCM16
    # the imported lock is a valid lock file
    saved = save_lock(back, lock_path(tmp_path / "locks", back.name, back.digest()))
    assert load_lock(saved, expect_model_id=MODEL_17).digest() == back.digest()


def _prompt(text: str, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_clone_prompt(rng.integers(0, 2048, (16, 5)), rng.standard_normal(8), text, "en")


def _wav() -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.full(2400, 0.1, np.float32), 24_000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _manifest(embeddings: dict | None = None, **extra) -> dict:
    m = {"vox_version": "0.4.0", "id": UUID, "created": "2026-06-08T00:00:00Z",
         "voice": {"name": "POLYGLOT", "description": "A neutral multilingual announcer voice."}, **extra}
    if embeddings is not None:
        m["embeddings"] = embeddings
    return m


def _entry(size: str, lang: str | None, kind: str, model: str | None = None) -> tuple[str, dict]:
    seg = f"-{lang}" if lang else ""
    folder = f"embeddings/qwen3-tts/{size}" + (f"/{lang}" if lang else "")
    fname = "clone-prompt.bin" if kind == "clone-prompt" else "sample-audio.wav"
    e = {"model": model or f"Qwen/Qwen3-TTS-12Hz-{size.upper()}", "engine": "qwen3-tts", "file": f"{folder}/{fname}",
         "format": "bin" if kind == "clone-prompt" else "wav"}
    if lang:
        e["language"] = lang
    return f"qwen3-tts-{size}{seg}-{kind}", e


def write_vox(path: Path, manifest: dict, files: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def multi(tmp_path) -> Path:
    """Clone prompts for 0.6b (default, es, fr-FR) and 1.7b (default); each prompt's text names it."""
    emb, files = {}, {}
    for size, lang in (("0.6b", None), ("0.6b", "es"), ("0.6b", "fr-FR"), ("1.7b", None)):
        for kind in ("clone-prompt", "sample-audio"):
            key, e = _entry(size, lang, kind)
            emb[key] = e
            files[e["file"]] = _prompt(f"{size}/{lang or 'default'}") if kind == "clone-prompt" else _wav()
    return write_vox(tmp_path / "multi.vox", _manifest(emb), files)


@pytest.mark.parametrize("model,language,expected", [
    ("0.6b", "es", "0.6b/es"),
    ("0.6b", "es-MX", "0.6b/es"),  # base subtag
    ("0.6b", "fr-fr", "0.6b/fr-FR"),  # case-insensitive tag
    ("0.6b", "de", "0.6b/default"),  # no German: the default entry
    ("0.6b", "en", "0.6b/default"),  # English is the default
    ("0.6b", None, "0.6b/default"),
    (MODEL_06, "es", "0.6b/es"),  # full repo id → size
    ("qwen3-tts-0.6b-es-clone-prompt", None, "0.6b/es"),  # exact key
    ("QWEN3-TTS-0.6B-FR-FR-CLONE-PROMPT", "fr-FR", "0.6b/fr-FR"),  # key case-insensitive
    ("Qwen/Qwen3-TTS-12Hz-1.7B", None, "1.7b/default"),  # model contains
    (MODEL_17, "es", "1.7b/default"),  # no Spanish 1.7b prompt: 1.7b default, never 0.6b Spanish
])
def test_lookup_order(multi, model, language, expected):
    lock = import_vox(multi, model_id=model, language=language)
    assert lock.ref_text == expected


def test_imported_language_comes_from_entry(multi):
    assert import_vox(multi, model_id="0.6b", language="es-MX").language == "es"
    assert import_vox(multi, model_id="0.6b", language="de").language == "en"


def test_no_match_names_what_is_there(multi):
    with pytest.raises(VoiceLockError) as e:
        import_vox(multi, model_id="4b")
    m = str(e.value)
    assert str(multi) in m and "POLYGLOT" in m and "qwen3-tts-0.6b-es-clone-prompt" in m


def test_sample_audio_never_returned_as_clone_prompt(tmp_path):
    # A faulty writer keyed the sample WAV like a clone prompt; a substring lookup on "0.6b" would hit it first.
    key_wav = {"model": "Qwen/Qwen3-TTS-12Hz-0.6B", "file": "embeddings/qwen3-tts/0.6b/sample-audio.wav"}
    _, e = _entry("0.6b", None, "clone-prompt")
    m = _manifest({"qwen3-tts-0.6b": key_wav, "zz-qwen3-tts-0.6b-prompt": e})
    path = write_vox(tmp_path / "s.vox", m, {key_wav["file"]: _wav(), e["file"]: _prompt("right one")})
    for query in ("qwen3-tts-0.6b", "0.6b", None):
        assert find_clone_prompt(m, read_vox(path).names, model_id=query)[0] == e["file"]
        assert import_vox(path, model_id=query).ref_text == "right one"


def test_legacy_path(tmp_path):
    files = {"embeddings/qwen3-tts/clone-prompt.bin": _prompt("legacy"),
             "embeddings/qwen3-tts/sample-audio.wav": _wav()}
    path = write_vox(tmp_path / "l.vox", _manifest(), files)
    lock = import_vox(path, model_id=MODEL_06)
    assert lock.ref_text == "legacy" and lock.model_id == MODEL_06 and lock.ref_audio.size == 2400
    with pytest.raises(VoiceLockError, match="does not say which Base model"):
        import_vox(path)


def test_deflate_entries_import(tmp_path):
    key, e = _entry("1.7b", None, "clone-prompt")
    files = {e["file"]: _prompt("deflated"), "embeddings/qwen3-tts/1.7b/sample-audio.wav": _wav()}
    path = write_vox(tmp_path / "d.vox", _manifest({key: e}), files, zipfile.ZIP_DEFLATED)
    assert import_vox(path).ref_text == "deflated"


def test_reference_audio_clip_used_when_no_sample(tmp_path):
    key, e = _entry("1.7b", None, "clone-prompt")
    refs = [{"file": "reference/take.wav", "transcript": "from the clip"}]
    path = write_vox(tmp_path / "r.vox", _manifest({key: e}, reference_audio=refs),
                     {e["file"]: _prompt("from the clip"), "reference/take.wav": _wav()})
    assert import_vox(path).ref_audio.size == 2400


def test_missing_sample_audio_and_corrupt_prompt(tmp_path):
    key, e = _entry("1.7b", None, "clone-prompt")
    path = write_vox(tmp_path / "n.vox", _manifest({key: e}), {e["file"]: _prompt("x")})
    with pytest.raises(VoiceLockError, match="no reference audio"):
        import_vox(path)
    path = write_vox(tmp_path / "c.vox", _manifest({key: e}), {e["file"]: b"\x05\x00\x00\x00{}"})
    with pytest.raises(VoiceLockError, match="clone-prompt.bin is corrupt"):
        import_vox(path)


def test_read_vox_rejects_bad_archives(tmp_path):
    (tmp_path / "x.vox").write_bytes(b"not a zip")
    with pytest.raises(VoiceLockError, match="not a readable ZIP"):
        read_vox(tmp_path / "x.vox")
    with zipfile.ZipFile(tmp_path / "y.vox", "w") as zf:
        zf.writestr("other.json", "{}")
    with pytest.raises(VoiceLockError, match="no manifest.json"):
        read_vox(tmp_path / "y.vox")
    no_desc = _manifest()
    no_desc["voice"]["description"] = "short"
    with pytest.raises(VoiceLockError, match="voice.description is required.*Re-export"):
        read_vox(write_vox(tmp_path / "z.vox", no_desc, {}))


def test_optional_field_problems_are_warnings_not_refusals(tmp_path):
    # An older writer: an unprefixed `file` value and an unknown voice field. The voice still imports.
    m = _manifest({"qwen3-tts-1.7b-clone-prompt": {"model": MODEL_17, "file": "qwen3-tts/1.7b/clone-prompt.bin"}})
    m["voice"]["accent"] = "RP"
    path = write_vox(tmp_path / "old.vox", m, {"embeddings/qwen3-tts/1.7b/clone-prompt.bin": _prompt("old writer"),
                                               "embeddings/qwen3-tts/1.7b/sample-audio.wav": _wav()})
    vox = read_vox(path)
    assert any("must start with 'embeddings/'" in p for p in vox.problems)
    assert any("unknown field 'accent'" in p for p in vox.problems)
    assert import_vox(path).ref_text == "old writer"
    r = _run("inspect", str(path))
    assert r.exit_code == 0 and "warning: voice: unknown field 'accent'" in r.output


# ---------------------------------------------------------------- manifest validation


@pytest.mark.parametrize("change,problem", [
    (lambda m: m.pop("vox_version"), "vox_version"),
    (lambda m: m.update(id=UUID.upper()), "lowercase UUID"),
    (lambda m: m.update(created="2026-06-08T00:00:00.123Z"), "fractional"),
    (lambda m: m["voice"].update(description="short"), "at least 10"),
    (lambda m: m["voice"].update(name=""), "voice.name"),
    (lambda m: m["voice"].update(gender="robot"), "voice.gender"),
    (lambda m: m["voice"].update(age_range=[40, 30]), "min < max"),
    (lambda m: m["voice"].update(age_range=[30, "old"]), "two non-negative integers"),
    (lambda m: m["voice"].update(accent="x"), "unknown field 'accent'"),
    (lambda m: m.update(provenance={"method": "cloned", "consent": "unknown"}), "source is required"),
    (lambda m: m.update(provenance={"method": "cloned", "consent": "unknown", "source": ["a.wav"]}), "consent"),
    (lambda m: m.update(reference_audio=[{"file": "a.wav"}]), "transcript"),
    (lambda m: m.update(embeddings={"k": {"file": "embeddings/x.bin"}}), "model is required"),
    (lambda m: m.update(extensions=[]), "extensions"),
])
def test_validate_manifest_rules(change, problem):
    m = _manifest()
    assert validate_manifest(m) == []
    change(m)
    problems = validate_manifest(m)
    assert any(problem in p for p in problems), problems


def test_cloned_provenance_with_consent_is_valid():
    m = _manifest(provenance={"method": "cloned", "consent": "self", "source": ["reference/a.wav"]})
    assert validate_manifest(m) == []


# ---------------------------------------------------------------- published examples (../shared)


@pytest.fixture(scope="module")
def vox_corpus(request) -> Path:
    corpus = request.getfixturevalue("corpus_dir") / "vox"
    if not corpus.is_dir():
        pytest.skip("../shared/corpus/vox is absent")
    return corpus


@pytest.fixture(scope="module")
def schema_validator(vox_corpus):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((vox_corpus / "schemas" / "manifest-v0.4.0.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _example_manifests(corpus: Path):
    for p in sorted((corpus / "examples").rglob("*.json")):
        if p.name == "manifest.json" or p.name.endswith("-manifest.json"):
            yield p, json.loads(p.read_text())
    for p in sorted((corpus / "examples").rglob("*.vox")):
        with zipfile.ZipFile(p) as zf:
            yield p, json.loads(zf.read("manifest.json"))
    for p in sorted((corpus / "schemas" / "test").glob("*.json")):
        yield p, json.loads(p.read_text())


@pytest.mark.corpus
def test_validator_agrees_with_published_schema(vox_corpus, schema_validator):
    seen = 0
    for path, m in _example_manifests(vox_corpus):
        schema_ok = schema_validator.is_valid(m)
        ours = validate_manifest(m)
        assert (ours == []) == schema_ok, (path, ours, [e.message for e in schema_validator.iter_errors(m)])
        assert ("invalid-" in path.name) != schema_ok, path
        seen += 1
    assert seen >= 15


@pytest.mark.corpus
def test_every_example_vox_reads_and_says_why_it_cannot_import(vox_corpus):
    examples = sorted((vox_corpus / "examples").rglob("*.vox"))
    assert len(examples) >= 9
    for p in examples:
        vox = read_vox(p)
        assert vox.manifest["voice"]["name"]
        with pytest.raises(VoiceLockError, match="holds no Qwen3-TTS clone prompt.*description"):
            import_vox(p)


@pytest.mark.corpus
def test_export_validates_against_published_schema(tmp_path, schema_validator):
    for lock in (make_lock(), make_lock(model_id=MODEL_06, language="fr-FR", description="")):
        m = read_vox(export_vox(lock, tmp_path / "v.vox", gender="neutral", age_range=[20, 30], tags=["a"],
                                character={"role": "Mother", "emotional_range": ["patient"]})).manifest
        errors = [e.message for e in schema_validator.iter_errors(m)]
        assert errors == []


# ---------------------------------------------------------------- CLI


def _run(*args):
    from flows.cli import cli

    return CliRunner().invoke(cli, ["voices", *args], catch_exceptions=True)


def test_cli_list_inspect_export_import(tmp_path):
    home = tmp_path / "home"
    r = _run("list", "--home", str(home))
    assert r.exit_code == 0 and "No voice locks" in r.output
    lock = make_lock()
    path = save_lock(lock, lock_path(home / "locks", lock.name, lock.digest()))
    r = _run("list", "--home", str(home))
    assert r.exit_code == 0, r.output
    assert "NAME" in r.output and "Marge" in r.output and lock.digest()[:12] in r.output and MODEL_17 in r.output

    r = _run("inspect", str(path))
    assert r.exit_code == 0 and "valid: yes" in r.output and "ref_codes: I32 [16, 30]" in r.output.replace("array ", "")
    info = json.loads(_run("inspect", str(path), "--json").output)
    assert info["metadata"]["name"] == "Marge" and info["arrays"]["x_vector"]["shape"] == [64]

    out = tmp_path / "marge.vox"
    r = _run("export", str(path), str(out), "--tag", "warm", "--gender", "female")
    assert r.exit_code == 0 and out.exists(), r.output
    r = _run("inspect", str(out))
    assert r.exit_code == 0 and "qwen3-tts-1.7b-clone-prompt" in r.output and "[16, 30]" in r.output
    info = json.loads(_run("inspect", str(out), "--json").output)
    assert info["manifest"]["voice"]["tags"] == ["warm"]

    r = _run("import", str(out), str(tmp_path / "imported"))
    assert r.exit_code == 0, r.output
    (imported, meta), = list_locks(tmp_path / "imported")
    assert meta["name"] == "Marge" and np.array_equal(load_lock(imported).ref_codes, lock.ref_codes)


def test_cli_import_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.setenv("READTHROUGH_HOME", str(tmp_path / "h"))
    out = export_vox(make_lock(), tmp_path / "m.vox")
    assert _run("import", str(out)).exit_code == 0
    r = _run("list")
    assert "Marge" in r.output


def test_cli_errors_are_voice_lock_errors(tmp_path):
    preset = VoiceLock(name="Bart", kind="preset", engine="qwen3", model_id="cv", params={"speaker": "ryan"})
    path = save_lock(preset, tmp_path / "b.lock.safetensors")
    r = _run("export", str(path), str(tmp_path / "b.vox"))
    assert isinstance(r.exception, VoiceLockError) and "only clone locks" in str(r.exception)
    (tmp_path / "bad.lock.safetensors").write_bytes(b"nope")
    r = _run("inspect", str(tmp_path / "bad.lock.safetensors"))
    assert isinstance(r.exception, VoiceLockError)


def test_cli_help_has_examples():
    for args in ([], ["list"], ["inspect"], ["export"], ["import"]):
        r = _run(*args, "--help")
        assert r.exit_code == 0 and "readthrough voices" in r.output


# ---------------------------------------------------------------- delivery variants


def _variant(neutral: VoiceLock, delivery: str, seed: int) -> VoiceLock:
    return make_lock(name=f"{neutral.name} ({delivery})", seed=seed, ref_text="The quick brown fox.",
                     params={"family": neutral.name, "delivery": delivery, "neutral": neutral.digest()})


def test_export_carries_delivery_variants_and_readers_still_find_the_voice(tmp_path):
    from pipeline.vox import import_vox_variants

    lock = make_lock()
    variants = [_variant(lock, "angry", 11), _variant(lock, "shouting", 12)]  # "angry" sorts before "clone"
    path = export_vox(lock, tmp_path / "m.vox", variants=variants)
    vox = read_vox(path)
    assert validate_manifest(vox.manifest) == [] and vox.problems == ()
    keys = list(vox.manifest["embeddings"])
    assert "variant-angry-qwen3-tts-1.7b-clone-prompt" in keys
    assert vox.manifest["extensions"]["readthrough"]["variants"]["shouting"]["digest"] == variants[1].digest()
    # every lookup a reader does for the voice itself still lands on its own clone prompt
    for model in (None, MODEL_17, "1.7b"):
        assert find_clone_prompt(vox.manifest, vox.names, model_id=model)[0] == \
            "embeddings/qwen3-tts/1.7b/clone-prompt.bin"
    back = import_vox(path)
    assert np.array_equal(back.ref_codes, lock.ref_codes)
    got = import_vox_variants(path, back)
    assert [v.params["delivery"] for v in got] == ["angry", "shouting"]
    for v, want in zip(got, variants):
        assert np.array_equal(v.ref_codes, want.ref_codes) and np.array_equal(v.x_vector, want.x_vector)
        assert v.params["neutral"] == back.digest() and v.params["family"] == back.name
        assert v.name == f"{back.name} ({v.params['delivery']})"
    assert import_vox_variants(export_vox(lock, tmp_path / "plain.vox"), back) == []


def test_export_refuses_a_lock_of_another_family(tmp_path):
    lock = make_lock()
    stranger = _variant(make_lock(name="Otto", seed=9), "shouting", 12)
    with pytest.raises(VoiceLockError, match="not a delivery variant of 'Marge'"):
        export_vox(lock, tmp_path / "m.vox", variants=[stranger])
    assert not (tmp_path / "m.vox").exists()


def test_voices_export_takes_the_locks_family_along(tmp_path):
    from flows.cli.voices import command

    lock = make_lock()
    neutral_path = save_lock(lock, lock_path(tmp_path, lock.name, lock.digest()))
    from pipeline.variants import variant_lock_path

    v = _variant(lock, "whispering", 13)
    save_lock(v, variant_lock_path(tmp_path, lock.name, "whispering", v.digest()))
    out = tmp_path / "m.vox"
    result = CliRunner().invoke(command, ["export", str(neutral_path), str(out)])
    assert result.exit_code == 0, result.output
    assert "with delivery variants: whispering" in result.output
    assert "variant-whispering-qwen3-tts-1.7b-clone-prompt" in read_vox(out).manifest["embeddings"]

    imported = tmp_path / "imported"
    result = CliRunner().invoke(command, ["import", str(out), str(imported)])
    assert result.exit_code == 0, result.output
    assert "delivery variant 'whispering'" in result.output
    [(vpath, info)] = [(p, i) for p, i in list_locks(imported) if i.get("params", {}).get("delivery")]
    neutral = [p for p, i in list_locks(imported) if not i.get("params", {}).get("delivery")]
    assert info["params"]["neutral"] == load_lock(neutral[0]).digest() and vpath.parent == neutral[0].parent
