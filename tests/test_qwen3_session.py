"""Continuous batching of clone prompts on tiny checkpoints: per-line streams, mixed voices, faithfulness to
mlx-audio's own ICL prompt, batching figures."""

from __future__ import annotations

import pytest

from pipeline.config import load_settings
from pipeline import mlx_runtime
from pipeline.engines import create_engine
from pipeline.engines.base import RenderJob
from pipeline.engines.session import SessionRow, open_session

pytestmark = pytest.mark.tiny

SAMPLE = "The quick brown fox jumps over the lazy dog."
TEXTS = ["Hello there.", "Where is the ship going tonight, captain?", "Aye.", "We sail at dawn, or not at all.",
         "Fetch the lantern.", "No.", "The tide turns at four and the wind is against us.", "Go below."]


def _settings(**overrides):
    return load_settings(overrides={"render.batch_size": 8, "render.max_retakes": 2,
                                    **{f"render.{k}": v for k, v in overrides.items()}})


@pytest.fixture(scope="module")
def engine(tiny_models):
    return create_engine("qwen3", _settings(), tiny_models)


@pytest.fixture(scope="module")
def locks(engine):
    """Three clone voices (different auditions)."""
    out = []
    for i, seed in enumerate((11, 12, 13)):
        audio = engine.design(f"voice {i}", SAMPLE, [seed], "en")[0]
        out.append(engine.lock(audio, SAMPLE, "en", name=f"V{i}", seed=seed))
    return out


def _rows(locks, seed=900):
    return [SessionRow(locks[i % len(locks)], RenderJob(key=f"line-{i:02d}", text=t, seed=seed + i))
            for i, t in enumerate(TEXTS)]


def _run(engine, rows, batch_size, policy="continuous"):
    session = engine.session(batch_size, policy)
    outcomes = {}
    session.run(rows, lambda o: outcomes.__setitem__(o.key, o))
    return outcomes, session.stats


def _digest(outcome):
    return None if outcome.audio is None else (outcome.tokens, outcome.seed, outcome.audio.digest())


def _run_to_caps(engine, rows, batch_size, policy="continuous", stop_after: int | None = None):
    """End of speech disabled, every take kept: each row runs to its own cap (10–60 frames), so rows finish at
    different steps and later rows join a batch in flight. `stop_after`: `should_stop` turns True once that many
    lines were handed out."""

    def run():
        model = engine.model("base")
        talker = model.config.talker_config
        old, talker.codec_eos_token_id = talker.codec_eos_token_id, talker.vocab_size
        try:
            session = engine.session(batch_size, policy).batch_session()
            session.judge = lambda audio, tokens, cap: None
            outcomes = {}
            stop = (lambda: False) if stop_after is None else (lambda: len(outcomes) >= stop_after)
            session.run(rows, lambda o: outcomes.__setitem__(o.key, o), stop)
            return outcomes, session.stats
        finally:
            talker.codec_eos_token_id = old

    return mlx_runtime.on_mlx_thread(run)


@pytest.fixture(scope="module")
def short_caps(tiny_models):
    return create_engine("qwen3", _settings(seconds_per_word=0.4, min_seconds=0.8), tiny_models)


def test_a_line_alone_equals_the_same_line_in_a_mixed_batch_of_eight(short_caps, locks):
    rows = _rows(locks)
    alone = {r.job.key: _run_to_caps(short_caps, [r], 1)[0][r.job.key] for r in rows}
    mixed, stats = _run_to_caps(short_caps, rows, 8)
    reordered, joined = _run_to_caps(short_caps, list(reversed(rows)), 3)  # rows join a batch in flight
    assert set(mixed) == set(alone) == set(reordered) == {r.job.key for r in rows}
    assert all(o.ok for o in mixed.values())
    caps = {r.job.key: short_caps._cap(r.job.text) for r in rows}
    assert {k: o.tokens for k, o in mixed.items()} == caps and len(set(caps.values())) >= 4
    assert stats.steps == max(caps.values()) and stats.busy_rows == sum(caps.values())  # a busy row-step: a frame
    assert joined.prefills == 8 and joined.steps < sum(caps.values())
    flips = [k for k in alone if _digest(alone[k]) != _digest(mixed[k]) or _digest(alone[k]) != _digest(reordered[k])]
    assert flips == [], f"{len(flips)}/8 lines changed with their batch neighbours"


def test_a_stop_between_decode_steps_hands_out_finished_rows_and_drops_the_batch_in_flight(short_caps, locks):
    """Ctrl-C inside a batch: the session returns at the next decode step; the finished line is the same take as
    without the stop, the rows in flight and the lines not started get no outcome."""
    rows = _rows(locks)
    whole, whole_stats = _run_to_caps(short_caps, rows, 2)
    stopped, stats = _run_to_caps(short_caps, rows, 2, stop_after=1)
    assert 1 <= len(stopped) <= 2 < len(rows)  # the first to finish (two rows may end on the same step)
    assert {k: _digest(o) for k, o in stopped.items()} == {k: _digest(whole[k]) for k in stopped}
    assert stats.steps < whole_stats.steps and stats.prefills == 2  # no line started after the stop


def test_a_stopped_render_keeps_its_lines_in_the_store_and_the_rerun_resumes(engine, locks, tmp_path):
    from pipeline.render import LineJob, line_key, render_missing
    from pipeline.store import LineStore

    digests = [lock.digest() for lock in locks]
    jobs = [LineJob(key=line_key(t, None, digests[i % 3], {}, {"engine": "qwen3"}), scene_index=0, heading=None, character=f"V{i % 3}",
                    voice_digest=digests[i % 3], text=t, instruct=None, seed=900 + i) for i, t in enumerate(TEXTS)]
    by_digest = dict(zip(digests, locks))
    store = LineStore(tmp_path)
    done: list[str] = []
    first = render_missing(engine, store, jobs, by_digest, batch_size=2, should_stop=lambda: len(done) >= 2,
                           on_line=lambda job, status: done.append(job.key))
    assert 2 <= len(first.rendered) + len(first.failed) < len(jobs) and first.stopped
    assert all(store.has(k) for k in first.rendered) and not any(store.has(k) for k in first.stopped)
    rerun = render_missing(engine, store, jobs, by_digest, batch_size=2)
    assert set(rerun.reused) == set(first.rendered)
    assert set(rerun.rendered) | {f.key for f in rerun.failed} == set(first.stopped) | {f.key for f in first.failed}


def test_a_line_alone_equals_itself_in_a_real_batch(engine, locks):
    """With end of speech and retakes on (lines end early, some retake): still neighbour-independent."""
    rows = _rows(locks)
    alone = {r.job.key: _run(engine, [r], 1)[0][r.job.key] for r in rows}
    mixed, _ = _run(engine, rows, 8)
    assert {k: _digest(o) for k, o in mixed.items()} == {k: _digest(o) for k, o in alone.items()}


def test_lines_of_three_voices_share_one_batch(engine, locks):
    rows = _rows(locks)
    outcomes, stats = _run(engine, rows, 8)
    # one session, one continuous batch: far fewer steps than rendering voice by voice, rows kept busy
    assert stats.prefills >= 8 and stats.mean_busy_rows > 1.5
    assert 0.0 <= stats.padding_waste < 1.0


def test_static_policy_waits_for_the_longest_row(engine, locks):
    rows = _rows(locks)
    _, continuous = _run(engine, rows, 4, "continuous")
    _, static = _run(engine, rows, 4, "static")
    assert continuous.lines == static.lines == 8
    assert static.padding_waste >= continuous.padding_waste


def test_open_session_falls_back_to_per_voice_batches():
    from pipeline.engines.instant import InstantEngine
    from pipeline.lock import VoiceLock

    lock = VoiceLock(name="A", kind="instant", engine="instant", model_id="instant-1",
                     params={"f0": 120.0, "bright": 0.5, "rate": 1.0})
    session = open_session(InstantEngine(), 2)
    got = []
    session.run([SessionRow(lock, RenderJob(key=f"line-{i}", text="Hi there.", seed=i)) for i in range(5)],
                got.append)
    assert len(got) == 5 and all(o.ok for o in got)
    assert session.stats.steps == 3 and session.stats.mean_busy_rows == pytest.approx(5 / 3)
