"""Line planning (content keys, direction, dual dialogue) and render_missing (only missing keys, per-line failures)."""

from __future__ import annotations

import math

import pytest
from fakes import FakeEngine

from pipeline.config import load_settings
from pipeline.fountain import parse_fountain, read_script
from pipeline.lock import VoiceLock
from pipeline.render import (
    LineJob, dual_pairs, line_key, plan_line_jobs, render_missing, sampling_payload, scene_label, select_scenes,
)
from pipeline.screenplay import Dialogue, DialoguePart
from pipeline.store import LineStore

ENGINE = {"engine": "fake", "model_id": "fake-1"}


@pytest.fixture(scope="module")
def sample(sample_script):
    return read_script(sample_script)


def _voices(screenplay):
    return {c: f"digest-{c.lower()}" for c in screenplay.characters()}


def test_one_job_per_spoken_part(sample):
    jobs = plan_line_jobs(sample, _voices(sample), ENGINE, load_settings(overrides={"narration.mode": "none"}))
    spoken = [p for _, d in sample.dialogues() for p in d.spoken]
    assert len(jobs) == len(spoken) == 18
    assert len({j.key for j in jobs}) == len(jobs)
    assert all(j.key.startswith("line-") for j in jobs)
    first = jobs[0]
    assert (first.character, first.extension, first.heading) == ("MARGARET", "V.O.", "EXT. LIGHTHOUSE GALLERY - NIGHT")
    assert first.text.startswith("Forty-one years")
    assert first.source_line == 16


def test_direction_reaches_jobs(sample):
    jobs = plan_line_jobs(sample, _voices(sample), ENGINE, load_settings())
    by_text = {j.text: j for j in jobs}
    assert by_text["Right on time. He never could let a thing end quietly."].instruct == "Mutter under your breath."
    assert by_text["Then he can drive two hours back."].pause_before == pytest.approx(load_settings().pauses.beat)
    otto = by_text["Lighthouse, lighthouse, this is the Marigold. Are you still there?"]  # emphasis removed
    assert otto.effects == ("radio",) and otto.instruct is None


def test_dual_dialogue_pairs(sample):
    jobs = plan_line_jobs(sample, _voices(sample), ENGINE, load_settings())
    dual = [(j.character, j.dual_group, j.dual_side) for j in jobs if j.dual_group is not None]
    assert dual == [("JUNE", 1, 0), ("MARGARET", 1, 1)]


def test_dual_pairs_only_second_marked():
    def d(name, dual=False):
        return Dialogue(name, name, None, (DialoguePart("line", "x", 1),), 1, dual)

    assert dual_pairs([d("A"), d("B"), d("C", True), d("D")]) == {1: (1, 0), 2: (1, 1)}
    assert dual_pairs([d("A", True), d("B", True), d("C", True), d("D", True)]) == {
        0: (1, 0), 1: (1, 1), 2: (2, 0), 3: (2, 1)}


def test_editing_one_line_changes_exactly_one_key(sample_script):
    text = sample_script.read_text(encoding="utf-8")
    edited = text.replace("You came to watch me pack.", "You came to watch me leave.")
    assert edited != text
    settings = load_settings()
    a = parse_fountain(text)
    b = parse_fountain(edited)
    ka = [j.key for j in plan_line_jobs(a, _voices(a), ENGINE, settings)]
    kb = [j.key for j in plan_line_jobs(b, _voices(b), ENGINE, settings)]
    assert len(ka) == len(kb)
    assert sum(x != y for x, y in zip(ka, kb)) == 1


def test_key_covers_voice_settings_engine():
    s = load_settings()
    base = line_key("Hello.", None, "v1", sampling_payload(s), ENGINE)
    assert line_key("Hello.", None, "v2", sampling_payload(s), ENGINE) != base
    assert line_key("Hello.", "Whisper.", "v1", sampling_payload(s), ENGINE) != base
    hot = s.with_overrides({"render.temperature": 0.5})
    assert line_key("Hello.", None, "v1", sampling_payload(hot), ENGINE) != base
    assert line_key("Hello.", None, "v1", sampling_payload(s), {**ENGINE, "model_id": "other"}) != base
    assert line_key("Hello.", None, "v1", sampling_payload(s), ENGINE, repeat=1) != base
    assert line_key("Hello.", None, "v1", sampling_payload(s), ENGINE) == base


def test_repeated_identical_lines_get_their_own_takes():
    sp = parse_fountain("INT. ROOM - DAY\n\nBOB\nNo.\n\nANN\nYes.\n\nBOB\nNo.\n")
    jobs = plan_line_jobs(sp, {"BOB": "b", "ANN": "a"}, ENGINE, load_settings(overrides={"narration.mode": "none"}))
    assert [j.text for j in jobs] == ["No.", "Yes.", "No."]
    assert jobs[0].key != jobs[2].key


def test_select_scenes(sample):
    assert [scene_label(sample, i) for i in select_scenes(sample, None)] == ["1", "2", "3", "4"]
    assert select_scenes(sample, ["3", "1"]) == [1, 3]
    with pytest.raises(ValueError, match="no scene 9"):
        select_scenes(sample, ["9"])


# ---------------------------------------------------------------------------------------------- render_missing


def _lock(name):
    return VoiceLock(name=name, kind="instant", engine="fake", model_id="fake-1", params={"f0": 120.0, "bright": 0.5,
                                                                                         "rate": 1.0})


def _jobs(n, voice="v1", character="A", scene=0):
    out = []
    for i in range(n):
        key = line_key(f"Line {i} of {character}.", None, voice, {}, ENGINE)
        out.append(LineJob(key=key, scene_index=scene, heading=None, character=character, voice_digest=voice,
                           text=f"Line {i} of {character}.", instruct=None, seed=i, source_line=10 + i))
    return out


def test_render_missing_batches_by_voice_and_skips_stored(tmp_path):
    store = LineStore(tmp_path)
    engine = FakeEngine()
    jobs = _jobs(5, "v1", "A") + _jobs(2, "v2", "B")
    locks = {"v1": _lock("A"), "v2": _lock("B")}
    summary = render_missing(engine, store, jobs, locks, batch_size=2)
    assert summary.ok and len(summary.rendered) == 7 and summary.reused == ()
    assert [len(c) for c in engine.render_calls] == [2, 2, 1, 2]  # A: 2+2+1, B: 2 — never mixed voices
    assert all(store.has(j.key) for j in jobs)
    assert store.meta(jobs[0].key).engine == "fake"

    engine.reset_counts()
    again = render_missing(engine, store, jobs, locks, batch_size=2)
    assert engine.render_calls == [] and len(again.reused) == 7 and again.rendered == ()


def test_render_missing_collects_failures_per_line(tmp_path):
    store = LineStore(tmp_path)
    jobs = _jobs(3)
    engine = FakeEngine().fail_key(jobs[1].key, "runaway: 40 s for 4 words")
    seen = []
    summary = render_missing(engine, store, jobs, {"v1": _lock("A")}, on_line=lambda j, s: seen.append(s))
    assert not summary.ok
    assert [f.key for f in summary.failed] == [jobs[1].key]
    assert summary.failed[0].reason == "runaway: 40 s for 4 words"
    assert summary.failed[0].source_line == 11
    assert store.has(jobs[0].key) and store.has(jobs[2].key) and not store.has(jobs[1].key)
    assert sorted(seen) == ["failed", "rendered", "rendered"]


def test_engine_crash_is_isolated_to_its_line(tmp_path):
    store = LineStore(tmp_path)
    jobs = _jobs(4)
    engine = FakeEngine().raise_key(jobs[2].key, RuntimeError("metal out of memory"))
    summary = render_missing(engine, store, jobs, {"v1": _lock("A")}, batch_size=8)
    assert [f.key for f in summary.failed] == [jobs[2].key]
    assert "metal out of memory" in summary.failed[0].reason
    assert len(summary.rendered) == 3


def test_missing_lock_fails_lines_not_run(tmp_path):
    summary = render_missing(FakeEngine(), LineStore(tmp_path), _jobs(2, voice=None, character="GHOST"), {})
    assert len(summary.failed) == 2 and "no voice lock for GHOST" in summary.failed[0].reason


def test_force_rerenders(tmp_path):
    store = LineStore(tmp_path)
    engine = FakeEngine()
    jobs = _jobs(2)
    render_missing(engine, store, jobs, {"v1": _lock("A")})
    engine.reset_counts()
    summary = render_missing(engine, store, jobs, {"v1": _lock("A")}, force=True)
    assert len(summary.rendered) == 2 and engine.rendered_keys == [j.key for j in jobs]


def test_instant_engine_is_deterministic():
    from pipeline.engines.base import RenderJob
    from pipeline.engines.instant import create

    e = create()
    job = RenderJob(key="line-00", text="Hello there, old friend.", seed=42)
    a = e.render(_lock("A"), [job])[0].audio
    b = e.render(_lock("A"), [job])[0].audio
    c = e.render(_lock("B").__class__(**{**_lock("B").__dict__, "params": {"f0": 200.0, "bright": 0.3, "rate": 1.0}}),
                 [job])[0].audio
    assert a.digest() == b.digest() != c.digest()
    longer = e.render(_lock("A"), [RenderJob(key="line-01", text="Hello there, old friend. " * 3, seed=42)])[0].audio
    assert longer.duration > a.duration


def test_fake_engine_queue_scripts_outcomes(tmp_path):
    jobs = _jobs(3)
    engine = FakeEngine().enqueue("ok", "retake limit reached")
    summary = render_missing(engine, LineStore(tmp_path), jobs, {"v1": _lock("A")})
    assert [f.key for f in summary.failed] == [jobs[1].key]
    assert summary.failed[0].reason == "retake limit reached"
    assert len(summary.rendered) == 2 and not engine.queue


def test_render_missing_reports_the_sessions_batching_figures(tmp_path):
    engine = FakeEngine()
    jobs = _jobs(5, "v1", "A") + _jobs(2, "v2", "B")
    summary = render_missing(engine, LineStore(tmp_path), jobs, {"v1": _lock("A"), "v2": _lock("B")}, batch_size=2)
    stats = summary.engine
    assert (stats.steps, stats.lines, stats.busy_rows) == (4, 7, 7) and summary.engine_calls == 4
    assert stats.mean_busy_rows == 1.75 and summary.to_json()["engine"]["mean_busy_rows"] == 1.75


def test_a_session_that_breaks_fails_its_unfinished_lines_by_name(tmp_path):
    from pipeline.engines.session import SessionStats

    class Breaking(FakeEngine):
        def session(self, batch_size):
            engine = self

            class _Session:
                stats = SessionStats()

                def run(self, rows, on_outcome, should_stop):
                    on_outcome(engine.render(rows[0].lock, [rows[0].job])[0])
                    raise RuntimeError("device lost")

            return _Session()

    store = LineStore(tmp_path)
    jobs = _jobs(3)
    summary = render_missing(Breaking(), store, jobs, {"v1": _lock("A")})
    assert summary.rendered == (jobs[0].key,) and store.has(jobs[0].key)
    assert [f.key for f in summary.failed] == [jobs[1].key, jobs[2].key] and summary.stopped == ()
    assert all("device lost" in f.reason for f in summary.failed)


def test_plan_chunks_keeps_script_order_and_drops_repeated_keys():
    from pipeline.render import plan_chunks

    jobs = _jobs(5, scene=0) + _jobs(4, "v2", "B", scene=1)
    chunks = plan_chunks(jobs + jobs[:2], 4)
    assert [len(c) for c in chunks] == [4, 4, 1]
    assert [j.key for c in chunks for j in c] == [j.key for j in jobs]


# ---- issue 18.1: a hard limit on the text of one line job, whether or not speeches are split


def test_bound_text_truncates_or_refuses():
    from pipeline.config import Settings
    from pipeline.errors import ScriptError
    from pipeline.render import bound_text, job_words, max_job_seconds

    s = Settings().with_overrides({"render.max_words_per_line": 5})
    text = "one two three four five six seven"
    cut, note = bound_text(text, s, "line 9 (ANNA)")
    assert cut == "one two three four five" and "7 words" in note and "max_words_per_line" in note
    assert bound_text("short line", s, "x") == ("short line", None)
    blob = "x" * 1000  # one 1,000-character "word" counts as 25 words: it cannot dodge the limit
    assert job_words(blob) == 25 and len(bound_text(blob, s, "x")[0]) == 5 * 40
    refuse = s.with_overrides({"render.long_lines": "refuse"})
    with pytest.raises(ScriptError, match=r"line 9 \(ANNA\).*7 words.*max_words_per_line = 5"):
        bound_text(text, refuse, "line 9 (ANNA)")
    assert max_job_seconds("a", s) == s.render.min_seconds
    assert max_job_seconds(" ".join(["w"] * 100), s) == pytest.approx(100 * s.render.seconds_per_word)


def test_plan_caps_a_20000_word_speech(tmp_path):
    from pipeline.config import Settings
    from pipeline.fountain import parse_fountain
    from pipeline.render import job_words, plan_line_jobs

    body = "\n".join(" ".join(["word"] * 10) for _ in range(2000))
    screenplay = parse_fountain(f"INT. ROOM - DAY\n\nANNA\n{body}\n")
    jobs = plan_line_jobs(screenplay, {"ANNA": "v"}, {"engine": "x"}, Settings(**{"narration": {"mode": "none"}}))
    # the cap applies to the script line, then the capped line is split into pieces (render.max_chunk_seconds)
    assert sum(job_words(j.text) for j in jobs) == 400 and any("20000 words" in n for n in jobs[0].notes)
    assert len(jobs) > 1 and all(j.pieces == len(jobs) for j in jobs)


def test_runaway_take_is_not_stored(tmp_path):
    import numpy as np

    from pipeline.audio import Audio
    from pipeline.config import Settings
    from pipeline.engines.base import RenderOutcome
    from pipeline.engines.instant import InstantEngine
    from pipeline.render import LineJob, render_missing
    from pipeline.store import LineStore

    class Babbler(InstantEngine):
        def render(self, lock, jobs):
            return [RenderOutcome(j.key, Audio(np.zeros(24_000 * 60, np.float32))) for j in jobs]  # 60 s each

    engine = Babbler()
    audio = engine.design("calm", "Hello there.", [1])[0]
    lock = engine.lock(audio, "Hello there.", name="A", description="calm", seed=1)
    job = LineJob(key="line-" + "ab" * 16, scene_index=0, heading=None, character="A", voice_digest="v",
                  text="Two words.", instruct=None, seed=1)
    store = LineStore(tmp_path)
    summary = render_missing(engine, store, [job], {"v": lock}, settings=Settings())
    assert not summary.rendered and "runaway take: 60.0 s" in summary.failed[0].reason
    assert not store.has(job.key)


def test_a_drawn_out_word_is_given_the_time_it_takes_to_say():
    """yntswyd's one-word line 'Bernaaaaaaaaaarrrrrrrrrd?!!!!' (29 characters) was a 'runaway' at the 2 s floor
    with the instant engine; a written word now counts once per 10 characters, for the check and the budget."""
    from pipeline.config import Settings
    from pipeline.engines.base import spoken_words
    from pipeline.engines.qwen3 import FRAMES_PER_SECOND, max_tokens_for
    from pipeline.render import max_job_seconds

    s = Settings()
    shout = "Bernaaaaaaaaaarrrrrrrrrd?!!!!"
    assert spoken_words(shout) == 3 and spoken_words("Hello there, captain.") == 3
    assert max_job_seconds(shout, s) == pytest.approx(3 * s.render.seconds_per_word)
    assert max_tokens_for(shout, s.render.seconds_per_word, s.render.min_seconds) == \
        math.ceil(FRAMES_PER_SECOND * max_job_seconds(shout, s))
    assert max_job_seconds("", s) == s.render.min_seconds


def test_the_instant_engine_says_yntswyds_shout_within_its_allowance():
    """Every instant voice (speaking rates 0.85–1.15) says the 29-character shout in more than the old 2 s floor
    for some voices, and within the new allowance for all."""
    from pipeline.config import Settings
    from pipeline.engines import create_engine
    from pipeline.engines.base import RenderJob
    from pipeline.render import max_job_seconds

    s, shout = Settings(), "Bernaaaaaaaaaarrrrrrrrrd?!!!!"
    engine = create_engine("instant", s)
    auditions = engine.design("A man shouting across a field.", "Hello there.", list(range(1, 13)))
    durations = []
    for i, audio in enumerate(auditions):
        lock = engine.lock(audio, "Hello there.", name=f"V{i}")
        [out] = engine.render(lock, [RenderJob(key=f"k{i}", text=shout, seed=1)])
        durations.append(out.audio.duration)
    assert max(durations) > s.render.min_seconds and max(durations) <= max_job_seconds(shout, s), durations
