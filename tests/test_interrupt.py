"""Ctrl-C inside a render chunk, without Prefect: the engine session asks `should_stop` before each step, stores
every finished line, drops the batch in flight, and the rerun renders only what is left. The interrupted report of
a run with mixed scenes, and reading a Prefect state's result inside an event loop."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from types import SimpleNamespace

import pytest
from fakes import FakeEngine

from pipeline.engines.base import RenderJob
from pipeline.engines.session import SessionRow, open_session
from pipeline.lock import VoiceLock
from pipeline.render import LineJob, line_key, render_missing
from pipeline.store import LineStore

ENGINE = {"engine": "fake", "model_id": "fake-1"}


def _lock(name: str) -> VoiceLock:
    return VoiceLock(name=name, kind="instant", engine="fake", model_id="fake-1",
                     params={"f0": 120.0, "bright": 0.5, "rate": 1.0})


def _jobs(n: int, voice: str, character: str) -> list[LineJob]:
    texts = [f"Line {i} of {character}." for i in range(n)]
    return [LineJob(key=line_key(t, None, voice, {}, ENGINE), scene_index=0, heading=None, character=character,
                    voice_digest=voice, text=t, instruct=None, seed=i, source_line=10 + i)
            for i, t in enumerate(texts)]


def _stop_after(lines: int):
    """A `should_stop` that turns True once `lines` lines were reported done (as a Ctrl-C mid-chunk would)."""
    done: list[str] = []
    return done, (lambda: len(done) >= lines)


def test_a_stop_mid_chunk_keeps_finished_lines_and_the_rerun_resumes(tmp_path):
    store = LineStore(tmp_path)
    engine = FakeEngine()
    jobs = _jobs(6, "v1", "A") + _jobs(6, "v2", "B")  # one chunk holding every line
    locks = {"v1": _lock("A"), "v2": _lock("B")}
    done, stop = _stop_after(3)
    summary = render_missing(engine, store, jobs, locks, batch_size=2, should_stop=stop,
                             on_line=lambda job, status: done.append(job.key))
    assert 3 <= len(summary.rendered) < len(jobs)  # stopped before the next engine step after the third line
    assert summary.failed == () and set(summary.stopped) == {j.key for j in jobs} - set(summary.rendered)
    assert all(store.has(k) for k in summary.rendered) and not any(store.has(k) for k in summary.stopped)
    assert summary.to_json()["stopped"] == list(summary.stopped)

    engine.reset_counts()
    rerun = render_missing(engine, store, jobs, locks, batch_size=2)
    assert set(rerun.reused) == set(summary.rendered) and set(rerun.rendered) == set(summary.stopped)
    assert sum(len(c) for c in engine.render_calls) == len(summary.stopped)  # nothing rendered twice


def test_a_stop_before_the_run_renders_nothing_and_fails_nothing(tmp_path):
    store = LineStore(tmp_path)
    jobs = _jobs(4, "v1", "A")
    summary = render_missing(FakeEngine(), store, jobs, {"v1": _lock("A")}, should_stop=lambda: True)
    assert summary.rendered == () and summary.failed == () and len(summary.stopped) == 4


def test_per_voice_session_asks_before_each_engine_call():
    engine = FakeEngine()
    asked = threading.Event()
    lock = _lock("A")
    rows = [SessionRow(lock, RenderJob(key=f"line-{i}", text="Hi there.", seed=i)) for i in range(6)]
    got = []

    def on_outcome(outcome) -> None:  # a Ctrl-C arrives while the first call's outcomes are handed out
        got.append(outcome)
        asked.set()

    open_session(engine, 2).run(rows, on_outcome, asked.is_set)
    assert len(got) == 2 and len(engine.render_calls) == 1


def test_interrupted_report_is_written_after_scenes_were_mixed(tmp_path):
    """A Ctrl-C after a scene was mixed: its record carries the mix's timings and mix, and the interrupted report
    must still be written (it was refused by the report schema, leaving no report: the old 1-in-5 flake)."""
    from flows.interrupt import RenderInterrupted
    from flows.render import _interrupted, _scene_record
    from pipeline.fountain import parse_fountain

    screenplay = parse_fountain("INT. ROOM - DAY\n\nA\nHello.\n\nINT. HALL - DAY\n\nB\nBye.\n")
    done = {**_scene_record("1", 0, "INT. ROOM - DAY", [1]), "status": "done", "path": str(tmp_path / "s1.wav"),
            "duration": 1.5, "rendered": 1, "mix": {"path": "s1.wav"}, "timings": {"mixing": 0.2}}
    pending = _scene_record("2", 1, "INT. HALL - DAY", [1])
    spec = SimpleNamespace(script_name="night", engine="preview", store_root=tmp_path / "lines")
    with pytest.raises(RenderInterrupted, match="1 of 2 scene"):
        _interrupted(tmp_path / "render-report.json", spec, tmp_path / "night.fountain", screenplay, "chosen", {},
                     [done, pending], [], 0.0, "2026-01-01T00:00:00Z")
    report = json.loads((tmp_path / "render-report.json").read_text())
    assert report["status"] == "interrupted"
    assert [s["status"] for s in report["scenes"]] == ["done", "pending"]


def test_state_result_inside_an_event_loop_is_the_result_not_a_coroutine():
    from prefect.states import Completed, Failed

    from flows.states import state_result

    async def read(state, **kw):
        plain = state.result(**kw)  # what a bare call gives inside a running loop
        if inspect.iscoroutine(plain):
            plain.close()
        return inspect.iscoroutine(plain), state_result(state, **kw)

    bare_is_coroutine, value = asyncio.run(read(Completed(data={"rendered": ["k"]})))
    assert bare_is_coroutine and value == {"rendered": ["k"]}
    _, exc = asyncio.run(read(Failed(data=ValueError("no")), raise_on_failure=False))
    assert isinstance(exc, ValueError)


def test_a_ctrl_c_after_the_render_finished_leaves_it_completed():
    from flows import interrupt
    from flows.cli.render import _was_interrupted

    interrupt.reset()
    assert not _was_interrupted(None, {"status": "interrupted"})  # an earlier run's report, no Ctrl-C now
    interrupt.request()
    try:
        assert not _was_interrupted(None, {"status": "completed"})  # came while the master was written
        assert _was_interrupted(None, {"status": "interrupted"}) and _was_interrupted(None, None)
        assert _was_interrupted(interrupt.RenderInterrupted("stopped"), {"status": "failed"})
    finally:
        interrupt.reset()
