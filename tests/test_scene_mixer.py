"""Scene mixes beside the engine (flows/scene_mixer, render.mix_while_rendering): order, context, shutdown, and in
the render flow: a scene is mixed while the engine is still rendering later lines, the mixes are cached like any
other, and the outputs are byte-identical to mixing between engine calls."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path

import pytest

from flows.reporting import listen
from flows.scene_mixer import SceneMixer

from helpers import render_with_report as render

_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="none")


def test_background_mixes_run_in_order_on_one_other_thread():
    seen: list[tuple[int, str]] = []
    with SceneMixer(lambda i: seen.append((i, threading.current_thread().name))) as mixer:
        for i in range(5):
            mixer.submit(i)
        mixer.finish()
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert {name for _, name in seen} != {threading.current_thread().name} and len({n for _, n in seen}) == 1


def test_in_line_mixes_run_on_the_callers_thread_and_count_as_waited():
    seen = []
    with SceneMixer(lambda i: (seen.append(threading.current_thread().name), time.sleep(0.05)),
                    background=False) as mixer:
        mixer.submit(1)
        assert seen == [threading.current_thread().name]  # done before submit returned
    assert mixer.waited >= 0.05


def test_mixes_see_the_context_the_mixer_was_made_in_not_the_one_at_hand_over():
    """A scene handed over from inside a render task must not run as that task's child (its transaction would hold
    back the mix's cached result): the mix sees the flow-level context of the mixer's creation."""
    seen = []
    _TAG.set("flow")
    with SceneMixer(lambda i: seen.append(_TAG.get())) as mixer:
        token = _TAG.set("render task")
        mixer.submit(0)
        mixer.finish()
        _TAG.reset(token)
    assert seen == ["flow"]


def test_leaving_on_an_error_drops_mixes_not_started_and_waits_for_the_running_one():
    started, release, done = threading.Event(), threading.Event(), []

    def mix(i):
        if i == 0:
            started.set()
            release.wait(5)
        done.append(i)

    with pytest.raises(KeyboardInterrupt):
        with SceneMixer(mix) as mixer:
            for i in range(3):
                mixer.submit(i)
            assert started.wait(5)
            threading.Timer(0.2, release.set).start()
            raise KeyboardInterrupt
    assert done == [0]  # the running mix finished before the block was left; 1 and 2 never started


def test_per_voice_batches_follow_the_script_so_scenes_complete_in_order():
    """Voices A and B alternate, C speaks last: each voice's batches are taken in the order of their first rows
    (before: all of A, then all of B, so the first scene waited for B's batch at the very end)."""
    from types import SimpleNamespace

    from pipeline.engines.session import PerVoiceSession, SessionRow

    a, b, c = object(), object(), object()
    rows = [SessionRow(lock, SimpleNamespace(key=key)) for lock, key in
            [(a, "A1"), (b, "B1"), (a, "A2"), (b, "B2"), (a, "A3"), (b, "B3"), (c, "C1")]]
    batches = PerVoiceSession(engine=None, batch_size=2)._batches(rows)
    assert [[r.job.key for r in batch] for batch in batches] == [["A1", "A2"], ["B1", "B2"], ["A3"], ["B3"], ["C1"]]


def _rss_mib() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_mixing_threads_freed_buffers_go_back_to_the_system():
    """glibc keeps what a thread frees in its arena: 80 MiB of 96 KiB buffers freed under one still in use stay
    resident until release_freed_memory (malloc_trim) hands their pages back."""
    import numpy as np

    from flows.scene_mixer import _malloc_trim, release_freed_memory

    if _malloc_trim() is None:
        pytest.skip("no glibc malloc_trim here: nothing to release")
    figures = {}

    def mix_like():
        blocks = [np.ones(96 * 1024 // 8) for _ in range(850)]
        keep = blocks[-1]  # the top of the arena stays in use: nothing is trimmed by itself
        del blocks[:]
        figures["freed"] = _rss_mib()
        release_freed_memory()
        figures["released"] = _rss_mib()
        del keep

    worker = threading.Thread(target=mix_like)
    worker.start()
    worker.join()
    assert figures["freed"] - figures["released"] > 40, figures


# ------------------------------------------------------------------------------------------------ in the render flow


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("background", [True, False])
def test_a_scene_mixes_while_the_engine_renders_later_lines(tmp_path, script, fake, background):
    """One line per engine call; the first line of the sample's last scene waits (at most 20 s) for scene 1's mix
    to be done. It is, when mixing runs beside the engine; mixing between engine calls cannot be (1 s, then on)."""
    scene_1_mixed, waits = threading.Event(), []
    render_lines = fake.render

    def on_event(event, payload):
        if event == "scene_done" and payload.get("scene") == "1":
            scene_1_mixed.set()

    def render_waiting_for_scene_1(lock, jobs):
        if any("come and live with us" in j.text for j in jobs):  # JUNE, the last scene's first line
            waits.append(scene_1_mixed.wait(20 if background else 1))
        return render_lines(lock, jobs)

    fake.render = render_waiting_for_scene_1
    with listen(on_event):
        state, report = render(script, tmp_path / "out", overrides={
            "render.batch_size": 1, "render.mix_while_rendering": background})
    assert state.is_completed(), state.message
    assert waits == [background]
    timings = report["timings"]
    assert timings["mixing_overlapped"] > 0 if background else timings["mixing_overlapped"] == 0


@pytest.mark.usefixtures("prefect_harness")
def test_mixing_beside_the_engine_writes_the_same_bytes_and_is_cached(tmp_path, script, fake):
    beside = tmp_path / "beside"
    state, first = render(script, beside, overrides={"render.chunk_lines": 5})
    assert state.is_completed(), state.message
    state, between = render(script, tmp_path / "between", overrides={"render.chunk_lines": 5,
                                                                      "render.mix_while_rendering": False})
    assert state.is_completed(), state.message
    for a, b in zip(first["scenes"], between["scenes"], strict=True):
        assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes(), a["scene"]
    assert Path(first["outputs"]["master_wav"]).read_bytes() == Path(between["outputs"]["master_wav"]).read_bytes()
    state, again = render(script, beside, overrides={"render.chunk_lines": 5})
    assert all(s["cached"] for s in again["scenes"])  # mixes handed over inside a render task were cached too
