"""Engine selection: explicit names pass through, `auto` picks qwen3 only when its models are at hand."""

from __future__ import annotations

import json

import pytest

from pipeline.config import load_settings
from pipeline.engines import engine_names, select
from pipeline.engines.select import resolve_engine
from pipeline.errors import EngineError

REAL_HUB_REACHABLE = select._hub_reachable  # before the autouse fixture replaces it


@pytest.fixture
def settings():
    return load_settings()


@pytest.fixture(autouse=True)
def _no_hub(tmp_path, monkeypatch):
    """No network and an empty Hugging Face cache, whatever the machine has."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(select, "_hub_reachable", lambda repo, timeout=1.0: pytest.fail("must not touch the network"))


def _model(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_tts"}))
    return folder


def test_auto_without_models_is_preview(settings):
    name, reason = resolve_engine(settings)
    assert name == "preview" and "HF_HUB_OFFLINE" in reason and "\n" not in reason


def test_auto_with_models_dir_is_qwen3(settings, tmp_path):
    _model(tmp_path / "m" / "base")
    _model(tmp_path / "m" / "voice-design")
    name, reason = resolve_engine(settings, tmp_path / "m")
    assert name == "qwen3" and str(tmp_path / "m") in reason


def test_auto_with_incomplete_models_dir_is_preview_and_says_what_is_missing(settings, tmp_path):
    _model(tmp_path / "m" / "base")
    (tmp_path / "m" / "voice-design").mkdir()  # no config.json: not a model
    name, reason = resolve_engine(settings, tmp_path / "m")
    assert name == "preview" and "voice-design/" in reason and "base/" not in reason


def test_auto_with_local_model_folders_in_settings_is_qwen3(settings, tmp_path):
    s = settings.with_overrides({"models.voice_design": str(_model(tmp_path / "vd")),
                                 "models.base_final": str(_model(tmp_path / "b17"))})
    assert resolve_engine(s)[0] == "qwen3"
    # draft quality needs the draft base model, which is still a hub id that is not cached
    assert resolve_engine(s.with_overrides({"render.quality": "draft"}))[0] == "preview"


def test_auto_with_models_in_the_hf_cache_is_qwen3(settings, tmp_path):
    cache = tmp_path / "hf-cache"
    for repo in (settings.models.voice_design, settings.models.base_final):
        root = cache / ("models--" + repo.replace("/", "--"))
        snap = root / "snapshots" / "abc123"
        snap.mkdir(parents=True)
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text("abc123")
        (snap / "config.json").write_text("{}")
        if repo == settings.models.voice_design:
            assert resolve_engine(settings)[0] == "preview"  # config alone, no weights yet
        (snap / "model.safetensors").write_bytes(b"")
    name, reason = resolve_engine(settings)
    assert name == "qwen3" and "cache" in reason


def test_auto_online_checks_the_hub_once(settings, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(select, "_hub_reachable", lambda repo, timeout=1.0: calls.append(repo) or False)
    assert resolve_engine(settings)[0] == "preview" and calls == [settings.models.voice_design]
    monkeypatch.setattr(select, "_hub_reachable", lambda repo, timeout=1.0: True)
    monkeypatch.setattr(select, "_mlx_accelerated", lambda s: True)
    name, reason = resolve_engine(settings)
    assert name == "qwen3" and "hub" in reason
    monkeypatch.setattr(select, "_mlx_accelerated", lambda s: False)
    name, reason = resolve_engine(settings)
    assert name == "preview" and "qwen3" in reason  # says how to force it


def test_hub_reachability_is_one_request_with_the_timeout(monkeypatch):
    """Bounded work, not a stopwatch: one HEAD request, with the given timeout, to the configured endpoint."""
    import urllib.error
    import urllib.request

    calls = []

    def unreachable(req, timeout=None):
        calls.append((req.get_method(), req.full_url, timeout))
        raise urllib.error.URLError("timed out")

    monkeypatch.setenv("HF_ENDPOINT", "http://10.255.255.1:81")
    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    assert REAL_HUB_REACHABLE("org/model", timeout=0.3) is False
    assert calls == [("HEAD", "http://10.255.255.1:81/api/models/org/model", 0.3)]


@pytest.mark.parametrize("name", engine_names())
def test_explicit_names_pass_as_they_are(settings, tmp_path, name):
    s = settings.with_overrides({"render.engine": name})
    assert resolve_engine(s) == (name, f"{name}: chosen explicitly (render.engine or --engine)")
    assert resolve_engine(settings, tmp_path, engine=name)[0] == name


def test_unknown_name_lists_the_engines(settings):
    with pytest.raises(EngineError) as e:
        resolve_engine(settings, engine="espeak")
    for n in engine_names():
        assert n in str(e.value)
    bad = settings.model_copy(update={"render": settings.render.model_copy(update={"engine": "qwen"})})
    with pytest.raises(EngineError, match="Did you mean 'qwen3'"):
        resolve_engine(bad)
