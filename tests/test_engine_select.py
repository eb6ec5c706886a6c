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


class _CountingHub:
    """urlopen stand-in: records each HEAD request's URL; answers 200, or raises `error` when given."""

    def __init__(self, error=None):
        self.urls, self.error = [], error

    def __call__(self, req, timeout=None):
        self.urls.append(req.full_url)
        if self.error is not None:
            raise self.error

        class Answer:
            status = 200

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        return Answer()


def _online_with_real_probe(monkeypatch, hub):
    import urllib.request

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")
    monkeypatch.setattr(select, "_hub_reachable", REAL_HUB_REACHABLE)
    monkeypatch.setattr(urllib.request, "urlopen", hub)


def test_auto_then_preflight_probe_each_model_once(settings, monkeypatch):
    """`--engine auto` picks qwen3 because the hub answers; the preflight then checks both models: the model auto
    asked about is not asked again, the other once, and a second round asks nothing."""
    from flows.cli.preflight import _check_qwen3_models

    hub = _CountingHub()
    _online_with_real_probe(monkeypatch, hub)
    monkeypatch.setattr(select, "_mlx_accelerated", lambda s: True)
    for _ in range(2):
        assert resolve_engine(settings)[0] == "qwen3"
        _check_qwen3_models(settings, None)
    ids = select._required_ids(settings)  # voice design, then the base model for this quality
    assert hub.urls == [f"http://hub.invalid/api/models/{i}" for i in ids]


def test_a_silent_hub_is_probed_once_for_all_models(settings, monkeypatch):
    import urllib.error

    from flows.cli.preflight import _check_qwen3_models
    from pipeline.errors import ModelError

    hub = _CountingHub(urllib.error.URLError("timed out"))
    _online_with_real_probe(monkeypatch, hub)
    assert resolve_engine(settings)[0] == "preview"
    with pytest.raises(ModelError, match="does not answer"):
        _check_qwen3_models(settings, None)
    assert len(hub.urls) == 1
    select.forget_hub_answers()  # a new process (or a changed network) asks again
    assert resolve_engine(settings)[0] == "preview" and len(hub.urls) == 2


def test_hub_answers_stand_for_a_while_then_are_asked_again(monkeypatch):
    """A long-lived process (a worker) does not keep an old answer, nor an old silence, for ever."""
    import urllib.error
    import urllib.request

    now = [1000.0]
    monkeypatch.setattr(select, "_clock", lambda: now[0])
    hub = _CountingHub()
    _online_with_real_probe(monkeypatch, hub)
    assert select._hub_reachable("org/model") and select._hub_reachable("org/model") and len(hub.urls) == 1
    now[0] += select.HUB_MEMO_S
    assert select._hub_reachable("org/model") and len(hub.urls) == 2
    silent = _CountingHub(urllib.error.URLError("timed out"))
    monkeypatch.setattr(urllib.request, "urlopen", silent)
    now[0] += select.HUB_MEMO_S
    assert not select._hub_reachable("org/model") and not select._hub_reachable("org/other")
    assert len(silent.urls) == 1
    now[0] += select.HUB_MEMO_S - 1
    assert not select._hub_reachable("org/other") and len(silent.urls) == 1
    now[0] += 1
    assert not select._hub_reachable("org/other") and len(silent.urls) == 2


def test_a_hub_error_status_is_an_answer_for_that_repo_only(monkeypatch):
    import urllib.error

    hub = _CountingHub(urllib.error.HTTPError("http://hub.invalid", 404, "not found", {}, None))
    _online_with_real_probe(monkeypatch, hub)
    assert select._hub_reachable("org/missing") is False and select._hub_reachable("org/missing") is False
    assert select._hub_reachable("org/other") is False
    assert len(hub.urls) == 2  # the host answered: another repo is still asked, each once


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
