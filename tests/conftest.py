"""Shared fixtures. Corpus tests skip when ../shared is absent; tiny checkpoints are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("READTHROUGH_SHARED", REPO.parent / "shared"))
SAMPLE_SCRIPT = REPO / "data" / "sample.fountain"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture(scope="session")
def corpus_dir(shared_dir) -> Path:
    path = shared_dir / "corpus"
    if not path.is_dir():
        pytest.skip("../shared/corpus is absent")
    return path


@pytest.fixture(scope="session")
def sample_script() -> Path:
    return SAMPLE_SCRIPT


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """DIR with base/, voice-design/, custom-voice/ tiny random Qwen3-TTS checkpoints (real mlx-audio loading)."""
    from pipeline.engines.tiny import make_tiny_models

    root = tmp_path_factory.mktemp("tiny-models")
    make_tiny_models(root)
    return root


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own READTHROUGH_HOME so no test reads another's line store or locks."""
    monkeypatch.setenv("READTHROUGH_HOME", str(tmp_path / "readthrough-home"))
