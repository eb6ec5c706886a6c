"""The preview engine (espeak-ng): real speech at 24 kHz, distinct voices, identical samples for identical input."""

from __future__ import annotations

import gc
import os
import stat
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from pipeline.audio import SAMPLE_RATE, Audio  # noqa: E402
from pipeline.engines import create_engine  # noqa: E402
from pipeline.engines.base import Engine, RenderJob  # noqa: E402
from pipeline.engines import preview  # noqa: E402
from pipeline.errors import CastFileError, EngineError  # noqa: E402
from pipeline.lock import VoiceLock, load_lock, save_lock  # noqa: E402

GRUFF = "A gruff man in his fifties with a deep, gravelly voice"
BRIGHT = "A bright young woman, fast and lively"


@pytest.fixture(scope="module")
def engine():
    return create_engine("preview", None)


def _lock(engine, description, seed=1234, name="X"):
    audio = engine.design(description, "Hello there.", [seed])[0]
    return engine.lock(audio, "Hello there.", name=name, description=description, seed=seed)


def _render(engine, lock, *texts, instruct=None):
    jobs = [RenderJob(key=f"k{i}", text=t, seed=7, instruct=instruct) for i, t in enumerate(texts)]
    return engine.render(lock, jobs)


def test_is_an_engine_and_describes_itself(engine):
    assert isinstance(engine, Engine)
    info = engine.info()
    assert info.name == "preview" and info.model_id.startswith("espeak-ng ") and info.model_id[10:11].isdigit()
    assert info.sample_rate == 24_000 and "design" in info.capabilities and "speaker_vector" not in info.capabilities
    assert info.identity()["engine"] == "preview" and info.identity()["model_id"] == info.model_id
    engine.release_design()  # a no-op, but callable


def test_line_renders_to_non_silent_24k_float32_growing_with_text(engine):
    lock = _lock(engine, GRUFF)
    short, long = _render(engine, lock, "Hi.", "Hi. I have been waiting for you all night, and the coffee is cold.")
    for o in (short, long):
        assert o.ok and o.error is None and o.seed == 7
        assert o.audio.sample_rate == SAMPLE_RATE == 24_000 and o.audio.samples.dtype == np.float32
        assert o.audio.samples.ndim == 1 and np.isfinite(o.audio.samples).all()
        assert float(np.sqrt(np.mean(o.audio.samples ** 2))) > 0.01
        assert np.abs(o.audio.samples).max() <= 1.0
    assert 0.2 < short.audio.duration < 1.5
    assert long.audio.duration > 3 * short.audio.duration


def test_different_descriptions_get_different_params_and_audio(engine):
    p1, p2 = preview.params_for(GRUFF, 1234), preview.params_for(BRIGHT, 1234)
    assert p1 != p2
    assert p1["variant"] in preview.ROUGH_VARIANTS and p2["variant"] in preview.FEMALE_VARIANTS
    assert p1["pitch"] < p2["pitch"] and p1["rate"] < p2["rate"]
    a1, a2 = (_render(engine, _lock(engine, d), "Where were you last night?")[0].audio for d in (GRUFF, BRIGHT))
    assert a1.digest() != a2.digest()


def test_params_are_pure_and_seeds_spread_variants():
    assert preview.params_for(GRUFF, 5) == preview.params_for(GRUFF, 5)
    assert preview.params_for("  a GRUFF man ", 5) == preview.params_for("a gruff man", 5)
    seeds = range(1234, 1240)
    variants = [preview.params_for("A man in his forties", s)["variant"] for s in seeds]
    assert len(set(variants)) == len(variants)  # consecutive seeds step through the pool
    pitches = [preview.params_for("A man in his forties", s)["pitch"] for s in seeds]
    assert max(pitches) - min(pitches) <= 12  # nearby, not random all over
    # similar descriptions, same seeds: the description offsets the pool, so the cast still differs
    a = [preview.params_for("A tired detective", s) for s in (1, 2, 3)]
    b = [preview.params_for("A tired detective, older", s) for s in (1, 2, 3)]
    assert a != b


@pytest.mark.parametrize("description, check", [
    ("An elderly woman", lambda p: p["variant"] in preview.OLD_FEMALE_VARIANTS),
    ("A 7-year-old boy", lambda p: p["variant"] in preview.CHILD_VARIANTS and p["pitch"] >= 60),
    ("A calm middle-aged man", lambda p: p["variant"] in preview.MALE_VARIANTS),
    ("She speaks slowly, monotone", lambda p: p["variant"] in preview.FEMALE_VARIANTS and p["rate"] < 150
     and p["range"] < 35),
    ("A whispering stranger", lambda p: p["variant"] in ("whisper", "whisperf")),
])
def test_description_words_steer_the_voice(description, check):
    for seed in (1, 2, 3):
        assert check(preview.params_for(description, seed)), (description, preview.params_for(description, seed))


def test_same_input_gives_identical_samples_even_after_other_lines(engine):
    lock = _lock(engine, BRIGHT)
    first = _render(engine, lock, "Same words, same voice.")[0].audio
    _render(engine, _lock(engine, GRUFF), "Something else entirely, to disturb any state.")
    again = _render(engine, lock, "Same words, same voice.")[0].audio
    assert np.array_equal(first.samples, again.samples)
    design1 = engine.design(GRUFF, "Testing one two.", [3, 4])
    design2 = engine.design(GRUFF, "Testing one two.", [3, 4])
    assert [a.digest() for a in design1] == [a.digest() for a in design2]
    assert design1[0].digest() != design1[1].digest()


def test_two_threads_give_the_same_samples_as_serial(engine):
    locks = [_lock(engine, GRUFF, name="A"), _lock(engine, BRIGHT, name="B")]
    texts = ["First line of the scene.", "And a reply, somewhat longer than the first one was."]
    serial = [[o.audio.digest() for o in _render(engine, lk, *texts)] for lk in locks]
    results: dict[int, list[str]] = {}

    def work(i):
        for _ in range(3):
            results[i] = [o.audio.digest() for o in _render(engine, locks[i], *texts)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [results[0], results[1]] == serial


def test_synth_buffer_size_is_part_of_the_engines_identity(engine, monkeypatch):
    """The library backend takes audio in 1 s buffers (few GIL-taking callbacks). The buffer size changes the noise
    of the Klatt variants (the GRUFF voice is klatt4), so it is in the identity that keys every take."""
    if not isinstance(engine.backend, preview._LibraryBackend):
        pytest.skip("the espeak-ng program backend has no synth buffers")
    lock = _lock(engine, GRUFF)
    assert engine.lock_params(lock)["variant"].startswith("klatt")
    long_line = ("A much longer line, one that runs well past a single second of speech, so that it fills several "
                 "of the larger buffers before the voice comes to its end.")
    ours, identity = _render(engine, lock, long_line)[0].audio.samples, engine.info().identity()
    assert identity["synth_buffer_ms"] == 1000 and len(ours) > 2 * SAMPLE_RATE
    monkeypatch.setattr(preview._LibraryBackend, "BUFFER_MS", 0)  # espeak's default, 60 ms
    assert not np.array_equal(_render(engine, lock, long_line)[0].audio.samples, ours)
    assert engine.info().identity() != identity


def _live_types() -> int:
    gc.collect()
    return sum(isinstance(o, type) for o in gc.get_objects())


def test_rendering_lines_leaves_no_new_types_behind(engine):
    """The synth callback copies its audio without making ctypes types: np.ctypeslib.as_array made an array type
    and a pointer type for every new callback length, which ctypes keeps for the process's life, so a render's
    memory grew line by line (~10 KiB a line)."""
    lock = _lock(engine, BRIGHT)
    _render(engine, lock, "Warm up, once.")
    before = _live_types()
    outcomes = _render(engine, lock, *[f"Line {i}: and so it went on" + ", and on" * i + "." for i in range(12)])
    assert all(o.ok for o in outcomes) and len({o.audio.samples.size for o in outcomes}) == 12
    assert _live_types() == before


def test_bad_lines_fail_alone_with_a_reason(engine):
    outcomes = _render(engine, _lock(engine, GRUFF), "Fine.", "   ", "", "Also fine.")
    assert [o.key for o in outcomes] == ["k0", "k1", "k2", "k3"]
    assert outcomes[0].ok and outcomes[3].ok
    for o in outcomes[1:3]:
        assert not o.ok and o.audio is None and "empty text" in o.error


def test_instruct_changes_delivery(engine):
    lock = _lock(engine, GRUFF)
    plain = _render(engine, lock, "Get out of my house.")[0].audio
    fast = _render(engine, lock, "Get out of my house.", instruct="shouting, fast")[0].audio
    assert fast.duration < plain.duration


def test_lock_holds_params_and_sample_and_round_trips(engine, tmp_path):
    audio = engine.design(GRUFF, "A sample line.", [42])[0]
    lock = engine.lock(audio, "A sample line.", "en", name="Marlowe", description=GRUFF, seed=42)
    assert lock.kind == "preview" and lock.engine == "preview" and lock.model_id == engine.info().model_id
    assert lock.params == preview.params_for(GRUFF, 42) and lock.seed == 42
    assert np.array_equal(lock.ref_audio, audio.samples) and lock.ref_text == "A sample line."
    assert lock.created.endswith("Z") and "T" in lock.created
    loaded = load_lock(save_lock(lock, tmp_path / "m.lock.safetensors"))
    assert loaded.digest() == lock.digest()
    a, b = (_render(engine, lk, "Play it again.")[0].audio for lk in (lock, loaded))
    assert np.array_equal(a.samples, b.samples)
    # the locked voice is the audition's voice
    assert np.array_equal(_render(engine, lock, "A sample line.")[0].audio.samples, audio.samples)


def test_presets_are_distinct_and_preview(engine):
    locks = [engine.preset_lock(s, None, name=s) for s in preview.PRESETS]
    assert len(locks) == 9
    keys = {tuple(sorted((k, v) for k, v in lk.params.items() if k != "preset")) for lk in locks}
    assert len(keys) == 9
    assert {lk.params["variant"] for lk in locks if lk.params["preset"] in ("vivian", "serena", "ono_anna", "sohee")} \
        <= set(preview.FEMALE_VARIANTS)
    assert all(lk.kind == "preview" and lk.ref_audio is not None and lk.ref_audio.size for lk in locks)
    assert _render(engine, engine.preset_lock("Uncle_Fu", "speak slowly", name="Fu"), "Tea?")[0].ok
    with pytest.raises(CastFileError, match="ryan"):
        engine.preset_lock("bob", None, name="Bob")


def test_locks_from_other_engines_still_preview(engine):
    preset = VoiceLock(name="R", kind="preset", engine="qwen3", model_id="m", params={"speaker": "Ryan"})
    clone = VoiceLock(name="C", kind="clone", engine="qwen3", model_id="m", description=BRIGHT, seed=3)
    assert engine.lock_params(preset)["variant"] == preview.PRESETS["ryan"]["variant"]
    assert engine.lock_params(clone) == preview.params_for(BRIGHT, 3)
    assert all(_render(engine, lk, "Hello.")[0].ok for lk in (preset, clone))


def test_languages_and_unknown_language_fallback(engine):
    assert preview.espeak_languages("en") == ["en-us"]
    assert preview.espeak_languages("fr-FR") == ["fr-fr", "fr", "en-us"]
    for lang in ("fr", "de", "xx-YY"):
        lock = engine.lock(Audio(np.zeros(10, np.float32)), "x", lang, name="L", description=BRIGHT, seed=1)
        out = _render(engine, lock, "Bonjour, ça va?")[0]
        assert out.ok, out.error


def test_speaker_embedding_is_a_deterministic_timbre_proxy(engine):
    texts = ["The quick brown fox jumps over the lazy dog.", "She sells seashells by the seashore, and then some."]
    man = [_render(engine, _lock(engine, GRUFF), t)[0].audio for t in texts]
    girl = [_render(engine, _lock(engine, "A little girl, bright and high"), t)[0].audio for t in texts]
    e = {k: [engine.speaker_embedding(a) for a in v] for k, v in (("man", man), ("girl", girl))}
    v = e["man"][0]
    assert v.dtype == np.float32 and v.ndim == 1 and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert np.array_equal(v, engine.speaker_embedding(man[0]))
    same = float(e["man"][0] @ e["man"][1])
    other = float(e["man"][0] @ e["girl"][1])
    assert same > other + 0.05


def test_wav_parser_tolerates_streamed_headers():
    pcm = (np.arange(100, dtype=np.int16) * 50).tobytes()
    wav = _wav_bytes(pcm, 22050, streamed=True)
    samples, rate = preview.parse_wav(wav)
    assert rate == 22050 and np.array_equal(samples, np.arange(100, dtype=np.int16) * 50)
    with pytest.raises(EngineError):
        preview.parse_wav(b"not a wav at all")


def _wav_bytes(pcm: bytes, rate: int, streamed: bool) -> bytes:
    import struct

    size = 0xFFFFFFFF if streamed else len(pcm)
    riff = 0xFFFFFFFF if streamed else 36 + len(pcm)
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate,
            rate * 2, 2, 16) + b"data" + struct.pack("<I", size) + pcm)


FAKE_ESPEAK = r'''#!{python}
"""A stand-in espeak-ng: logs its arguments, writes a streamed 16-bit WAV whose length follows the text."""
import struct, sys
args = sys.argv[1:]
if "--help" in args:
    print("-P <integer>\n   Pitch range adjustment"); sys.exit(0)
if "--version" in args:
    print("eSpeak NG text-to-speech: 1.51  Data at: /nowhere"); sys.exit(0)
text = sys.stdin.buffer.read().decode()
open({log!r}, "a").write(" ".join(args) + "\n")
n = 2205 * len(text)
pcm = b"".join(struct.pack("<h", int(8000 * ((i // 20) % 2 * 2 - 1))) for i in range(n))
sys.stdout.buffer.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16) + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm)
'''


def test_falls_back_to_an_espeak_ng_program(tmp_path, monkeypatch):
    bin_dir, log = tmp_path / "bin", tmp_path / "args.log"
    bin_dir.mkdir()
    exe = bin_dir / "espeak-ng"
    exe.write_text(FAKE_ESPEAK.format(python=sys.executable, log=str(log)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails like a missing extra
    monkeypatch.setattr(preview, "_BACKEND", None)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    eng = preview.create(None, None)
    assert eng.info().model_id == "espeak-ng 1.51"
    lock = eng.lock(Audio(np.zeros(10, np.float32)), "x", name="P", description=GRUFF, seed=9)
    short, long = _render(eng, lock, "Hi.", "Hi there, a longer line.")
    assert short.ok and long.ok and long.audio.duration > short.audio.duration
    assert short.audio.sample_rate == 24_000 and short.audio.samples.dtype == np.float32
    p = lock.params
    logged = log.read_text().splitlines()[0]
    assert f"-v en-us+{p['variant']}" in logged and f"-p {p['pitch']}" in logged and f"-P {p['range']}" in logged
    assert "--stdout" in logged and "--stdin" in logged


def test_without_espeak_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    monkeypatch.setattr(preview, "_BACKEND", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match=r"pip install 'readthrough\[preview\]'"):
        create_engine("preview", None)


def test_engine_module_is_not_imported_by_the_registry():
    import subprocess

    code = "import sys, pipeline.engines, pipeline.engines.select; print('pipeline.engines.preview' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False", out.stderr
