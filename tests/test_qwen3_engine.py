"""The qwen3 engine on tiny random checkpoints: the real mlx-audio code path, on CPU."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from pipeline.audio import Audio
from pipeline.config import load_settings
from pipeline.engines import create_engine
from pipeline import mlx_runtime
from pipeline.engines import qwen3
from pipeline.engines.base import RenderJob
from pipeline.testing.tiny import PRESET_SPEAKERS
from pipeline.errors import ModelError, SettingsError, VoiceLockError
from pipeline.languages import language_name
from pipeline.lock import load_lock, save_lock

pytestmark = pytest.mark.tiny

SAMPLE = "The quick brown fox jumps over the lazy dog."


def _settings(**overrides):
    base = {"render.batch_size": 4, "render.max_retakes": 2}
    base.update({f"render.{k}": v for k, v in overrides.items()})
    return load_settings(overrides=base)


@pytest.fixture(scope="module")
def engine(tiny_models):
    return create_engine("qwen3", _settings(), tiny_models)


@pytest.fixture(scope="module")
def audition(engine):
    return engine.design("A gravelly old sailor", SAMPLE, [11], "en")[0]


@pytest.fixture(scope="module")
def clone_lock(engine, audition, tmp_path_factory):
    lock = engine.lock(audition, SAMPLE, "en", name="Sailor", description="A gravelly old sailor", seed=11)
    path = save_lock(lock, tmp_path_factory.mktemp("locks") / "sailor.lock.safetensors")
    return load_lock(path, expect_model_id=engine.base_id)


def _jobs(*texts, seed=100):
    return [RenderJob(key=f"line-{i}", text=t, seed=seed + i) for i, t in enumerate(texts)]


def _samples(outcomes):
    return [o.audio.samples if o.audio is not None else None for o in outcomes]


def _same(a, b) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
               for x, y in zip(a, b))


def test_design_lock_render_end_to_end(engine, audition, clone_lock):
    assert audition.sample_rate == 24_000 and audition.samples.size > 0
    assert np.all(np.isfinite(audition.samples))
    lock = clone_lock
    assert (lock.kind, lock.engine, lock.model_id) == ("clone", "qwen3", engine.base_id)
    assert lock.ref_text == SAMPLE and lock.created.endswith("Z") and lock.seed == 11
    assert lock.ref_codes.dtype == np.int32 and lock.ref_codes.shape[0] == 16 and lock.ref_codes.shape[1] > 0
    assert lock.x_vector.dtype == np.float32 and lock.x_vector.shape == (64,)
    # Reference hygiene: ~0.5 s of silence appended.
    assert np.all(lock.ref_audio[-11_000:] == 0.0)
    outcomes = engine.render(lock, _jobs("Hello there.", "Where is the ship going tonight?", "Aye."))
    assert [o.key for o in outcomes] == ["line-0", "line-1", "line-2"]
    for o in outcomes:
        assert o.ok, o.error
        assert o.audio.sample_rate == 24_000 and o.audio.samples.size > 0
        assert np.all(np.isfinite(o.audio.samples)) and o.tokens > 0


def test_lock_render_matches_mlx_audio_generate_when_greedy(clone_lock, tiny_models):
    """The saved-then-loaded lock carries the voice unchanged and the session builds mlx-audio's own ICL prompt:
    with temperature 0 (sampling streams play no part) a render gives the same tokens and samples as mlx-audio's
    generate() on an independently loaded model (its ICL cache cold). With sampling on, lines draw from their
    own random streams (tests/test_qwen3_session.py), so they no longer equal generate() after mx.random.seed."""
    import mlx.core as mx
    from mlx_audio.tts.utils import load

    greedy = create_engine("qwen3", _settings(temperature=0.0, max_retakes=0), tiny_models)
    s = greedy.options
    text = "Hello there, captain."
    [out] = greedy.render(clone_lock, [RenderJob(key="k", text=text, seed=1)])
    cap = qwen3.max_tokens_for(text, s.seconds_per_word, s.min_seconds)

    def reference():
        model = load(str(tiny_models / "base"))
        parts = list(model.generate(text, ref_audio=mx.array(clone_lock.ref_audio), ref_text=clone_lock.ref_text,
                                    lang_code="english", max_tokens=cap, temperature=0.0, top_k=s.top_k,
                                    top_p=s.top_p, repetition_penalty=s.repetition_penalty))
        return np.array(parts[0].audio), parts[0].token_count

    ref_audio, ref_tokens = mlx_runtime.on_mlx_thread(reference)
    assert out.tokens == ref_tokens > 1
    assert np.array_equal(out.audio.samples, ref_audio)


def test_same_seed_same_audio_other_seed_differs(engine, clone_lock):
    a = engine.render(clone_lock, _jobs("Hello there.", seed=300))
    b = engine.render(clone_lock, _jobs("Hello there.", seed=300))
    c = engine.render(clone_lock, _jobs("Hello there.", seed=301))
    assert a[0].ok and b[0].ok and c[0].ok
    assert np.array_equal(a[0].audio.samples, b[0].audio.samples)
    assert a[0].audio.samples.shape != c[0].audio.samples.shape or not np.array_equal(
        a[0].audio.samples, c[0].audio.samples)


def test_batch_of_four_equals_itself(engine, clone_lock):
    jobs = _jobs("Hello there.", "Where is the ship?", "Aye, captain.", "We sail at dawn.", seed=400)
    first = engine.render(clone_lock, jobs)
    second = engine.render(clone_lock, jobs)
    assert all(o.ok for o in first), [o.error for o in first]
    assert _same(_samples(first), _samples(second))
    assert [o.seed for o in first] == [o.seed for o in second]


def test_forced_runaway_retakes_then_fails_clearly(engine, clone_lock):
    def set_eos(value):
        model = engine.model("base")
        old = model.config.talker_config.codec_eos_token_id
        model.config.talker_config.codec_eos_token_id = value
        return old

    vocab = mlx_runtime.on_mlx_thread(lambda: engine.model("base").config.talker_config.vocab_size)
    old = mlx_runtime.on_mlx_thread(set_eos, vocab)  # EOS can never be sampled: every take runs to max_tokens
    try:
        outcomes = engine.render(clone_lock, _jobs("Hi.", seed=500))
    finally:
        mlx_runtime.on_mlx_thread(set_eos, old)
    [o] = outcomes
    assert not o.ok and o.audio is None
    assert o.retakes == 2 and o.seed == 502
    assert "runaway" in o.error and "25-frame limit" in o.error and "3 takes" in o.error
    assert o.tokens == 25


def test_preset_lock_renders(engine):
    lock = engine.preset_lock("Ryan", "Calm and warm.", "en", name="Narrator")
    assert (lock.kind, lock.model_id) == ("preset", engine.identity("custom_voice"))
    assert lock.params == {"speaker": "ryan", "instruct": "Calm and warm."}
    outcomes = engine.render(lock, _jobs("Good evening.", "It was a dark night.", seed=600))
    for o in outcomes:
        assert o.ok, o.error
        assert o.audio.sample_rate == 24_000 and np.all(np.isfinite(o.audio.samples))


def test_unknown_preset_speaker_lists_the_available_ones(engine):
    with pytest.raises(VoiceLockError) as e:
        engine.preset_lock("bob", None, "en", name="Bob")
    for name in PRESET_SPEAKERS:
        assert name in str(e.value)


def test_missing_model_folder_says_how_to_fix(tmp_path):
    eng = create_engine("qwen3", _settings(), tmp_path / "nowhere")
    with pytest.raises(ModelError) as e:
        eng.design("x", "Hello.", [1])
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "voice-design") in msg and "make-tiny-models" in msg
    assert "models.voice_design" in msg


def test_model_without_speech_tokenizer_is_refused(tiny_models, tmp_path):
    broken = tmp_path / "broken-base"
    shutil.copytree(tiny_models / "base", broken)
    shutil.rmtree(broken / "speech_tokenizer")
    with pytest.raises(ModelError, match="without its speech tokenizer"):
        mlx_runtime.on_mlx_thread(mlx_runtime.load_model, str(broken), "base_final", 1.5)
    assert str(broken.resolve()) not in mlx_runtime._MODELS


def test_offline_hub_id_not_cached_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelError) as e:
        mlx_runtime.resolve_model("mlx-community/Not-A-Real-Model-bf16", "models.base_final")
    msg = str(e.value)
    assert "mlx-community/Not-A-Real-Model-bf16" in msg and "offline" in msg
    assert "huggingface-cli download mlx-community/Not-A-Real-Model-bf16" in msg
    assert "models.base_final" in msg and "local model folder" in msg


def test_memory_check_names_model_and_smaller_alternative(tiny_models, monkeypatch):
    monkeypatch.setattr(mlx_runtime, "available_memory_bytes", lambda: 1000)
    model_id = "mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16"
    with pytest.raises(ModelError) as e:
        mlx_runtime.check_memory(tiny_models / "base", model_id, "base_final", 1.5)
    msg = str(e.value)
    assert model_id in msg and "draft" in msg and "Qwen3-TTS-12Hz-1.7B-Base-8bit" in msg
    monkeypatch.setattr(mlx_runtime, "available_memory_bytes", lambda: 10**12)
    mlx_runtime.check_memory(tiny_models / "base", model_id, "base_final", 1.5)


def test_language_names():
    assert language_name("en") == "english"
    assert language_name("en-GB") == "english"
    assert language_name("pt_BR") == "portuguese"
    assert language_name("ZH") == "chinese"
    assert language_name("german") == "german"
    with pytest.raises(SettingsError, match="Available"):
        language_name("xx")


def test_engine_refuses_a_language_it_cannot_speak_before_any_work(tiny_models):
    """render.engine = "auto" may pick qwen3 after the settings loaded: the engine checks the language itself."""
    settings = load_settings(overrides={"render.language": "nl"})  # fine for preview
    with pytest.raises(SettingsError, match="not one Qwen3-TTS speaks"):
        create_engine("qwen3", settings, tiny_models)


def test_mlx_runs_on_one_thread_whoever_calls(engine, audition):
    seen, results = [], []

    def work():
        seen.append(mlx_runtime.on_mlx_thread(threading.get_ident))
        results.append(engine.speaker_embedding(audition))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and seen[0] != threading.get_ident()
    assert all(r.dtype == np.float32 and r.shape == (64,) for r in results)
    assert all(np.array_equal(r, results[0]) for r in results)


def test_lock_from_other_base_size_is_rederived_once(clone_lock, tiny_models, tmp_path):
    """A draft engine whose Base is another folder re-derives the clone prompt from the lock's audio (cached)."""
    other = tmp_path / "other-base"
    shutil.copytree(tiny_models / "base", other)
    settings = _settings(quality="draft").with_overrides({"models.base_draft": str(other)})
    eng = create_engine("qwen3", settings)
    assert eng.base_id.startswith("local:other-base@") and eng.base_id != clone_lock.model_id
    codes, xvec = eng.clone_prompt(clone_lock)
    assert eng.clone_prompt(clone_lock)[0] is codes  # cached per (lock, model)
    # Same weights under another name: the re-derived prompt equals the lock's own.
    assert np.array_equal(codes, clone_lock.ref_codes)
    assert np.allclose(xvec, clone_lock.x_vector, atol=1e-5)
    [o] = eng.render(clone_lock, _jobs("Hello there.", seed=700))
    assert o.ok, o.error


def test_release_design_drops_the_model(tiny_models):
    eng = create_engine("qwen3", _settings(), tiny_models)
    eng.design("A bright young voice", "Hi there.", [1])
    key = str((tiny_models / "voice-design").resolve())
    assert key in mlx_runtime._MODELS
    eng.release_design()
    assert key not in mlx_runtime._MODELS


def test_info_names_engine_and_models(engine, tiny_models):
    info = engine.info()
    assert info.sample_rate == 24_000 and "speaker_vector" in info.capabilities
    d = info.identity()
    assert d["engine"] == "qwen3"
    assert d["model_id"] == d["base_model"] == qwen3.model_identity(str(tiny_models / "base"))
    assert d["design_model"].startswith("local:voice-design@")
    assert d["custom_voice_model"].startswith("local:custom-voice@")


def test_model_identity_follows_content_not_location(tiny_models, tmp_path):
    """Line keys and seeds include the model identity: moving a checkpoint must not change it; editing it must."""
    moved = tmp_path / "elsewhere" / "base"
    shutil.copytree(tiny_models / "base", moved)
    assert qwen3.model_identity(str(moved)) == qwen3.model_identity(str(tiny_models / "base"))
    config = moved / "config.json"
    config.write_text(config.read_text().replace("24000", "24001"))
    assert qwen3.model_identity(str(moved)) != qwen3.model_identity(str(tiny_models / "base"))
    assert qwen3.model_identity("mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16") == "mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16"


def test_speaker_embedding_of_a_short_clip(engine):
    clip = Audio(np.sin(np.linspace(0, 200, 1200)).astype(np.float32))
    v = engine.speaker_embedding(clip)
    assert v.shape == (64,) and np.all(np.isfinite(v))
