"""Shared fixtures. Corpus tests skip when ../shared is absent; tiny checkpoints are built once per session."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def script(tmp_path, sample_script) -> Path:
    """A copy of the sample script in this test's folder (tests may edit it)."""
    path = tmp_path / "sample.fountain"
    shutil.copy(sample_script, path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """DIR with base/, voice-design/, custom-voice/ tiny random Qwen3-TTS checkpoints (real mlx-audio loading)."""
    from pipeline.testing.tiny import make_tiny_models

    root = tmp_path_factory.mktemp("tiny-models")
    make_tiny_models(root)
    return root


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own READTHROUGH_HOME so no test reads another's line store or locks."""
    monkeypatch.setenv("READTHROUGH_HOME", str(tmp_path / "readthrough-home"))


@pytest.fixture(autouse=True)
def _fresh_hub_answers():
    """The hub probes' per-process memo (pipeline.engines.select) starts empty in every test."""
    from pipeline.engines.select import forget_hub_answers

    forget_hub_answers()
    yield
    forget_hub_answers()


def pytest_collection_modifyitems(items):
    """Every test that starts the Prefect test server (the `prefect_harness` fixture) is in the `prefect` lane, so
    the fast lane (`-m "not prefect and not server"`) can never start one by accident."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.prefect)


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server (temporary database) for the whole session: each entry costs ≈15 s, so flow tests
    share this one. Caches do not leak between tests: results are stored under each test's READTHROUGH_HOME.
    The server gets the `mlx` global concurrency limit (as `readthrough deploy` would create it), which flows
    acquire strictly for MLX engines whenever they talk to a server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.config import load_settings

    with prefect_test_harness(server_startup_timeout=120):
        deploy = load_settings().deploy
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(deploy.concurrency_limit)
            except Exception:  # ObjectNotFound: create it
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=deploy.concurrency_limit, limit=deploy.mlx_slots))
        yield


@pytest.fixture
def fake():
    """The queue-driven fake engine (tests/fakes.py), registered for this test; engine caches cleared around it."""
    from fakes import install_fake_engine
    from flows.tasks import clear_engines

    clear_engines()
    engine = install_fake_engine()
    yield engine
    clear_engines()
