"""Flow wiring on one session-scoped Prefect server: deliverables, rerun semantics, failure isolation, subsets.

Orchestration tests use the queue-driven fake engine (tests/fakes.py); one end-to-end test runs the real qwen3
engine on tiny checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flows.tasks import clear_engines

from helpers import render_with_report as render

pytestmark = pytest.mark.usefixtures("prefect_harness")


def deliverables(out: Path, report: dict) -> None:
    assert len(list((out / "scenes").glob("scene-*.wav"))) == 4
    outputs = report["outputs"]
    for name in ("master_wav", "cues", "srt", "vtt", "labels"):
        assert Path(outputs[name]).is_file(), name
    assert all(s["status"] == "done" and Path(s["path"]).is_file() for s in report["scenes"])
    cues = json.loads(Path(outputs["cues"]).read_text())
    assert "Forty-one years" in json.dumps(cues)


def test_full_render_instant_then_cached(tmp_path, script):
    clear_engines()
    out = tmp_path / "out"
    state, report = render(script, out, engine="instant")
    assert state.is_completed(), state.message
    deliverables(out, report)
    assert report["counts"] == {"lines": 30, "rendered": 30, "reused": 0, "failed": 0}  # 18 dialogue, 12 narration
    assert report["engine"]["name"] == "instant" and report["engine"]["model_id"] == "instant-1"
    assert report["audio_seconds"] > 10
    timings = report["timings"]
    assert set(timings) == {"casting", "engine", "mixing", "master", "other", "mixing_overlapped"}
    assert timings["engine"] > 0 and timings["mixing"] + timings["mixing_overlapped"] > 0 and timings["master"] > 0
    spent = sum(v for k, v in timings.items() if k != "mixing_overlapped")  # beside the engine: not in the wall
    assert abs(spent - report["wall_seconds"]) < 0.02
    state, again = render(script, out, engine="instant")
    assert state.is_completed()
    assert again["counts"] == {"lines": 30, "rendered": 0, "reused": 30, "failed": 0}
    assert all(s["cached"] for s in again["scenes"])
    assert again["timings"]["engine"] == again["timings"]["mixing"] == again["timings"]["mixing_overlapped"] == 0

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["cast-sample", "render-sample"])))}
    assert keys == {"cast-sample", "render-sample"}


def test_outputs_markdown_links_and_failures():
    from flows.reporting import artifact_key, outputs_markdown

    md = outputs_markdown({
        "script": "/s/x.fountain", "engine": {"engine": "instant"},
        "counts": {"lines": 3, "rendered": 2, "reused": 0, "failed": 1}, "outputs": {"master_wav": "/o/x.wav"},
        "scenes": [{"scene": "1", "heading": "INT. A", "status": "failed", "path": None, "failed_lines": [
            {"scene": "1", "source_line": 7, "character": "ANN", "text": "Hi.", "reason": "runaway"}]}]})
    assert "[/o/x.wav](file:///o/x.wav)" in md and "line 7 ANN" in md and "runaway" in md
    assert artifact_key("Cast", "My Script_2") == "cast-my-script-2"


def test_second_run_makes_zero_engine_calls(tmp_path, script, fake):
    out = tmp_path / "out"
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert len(fake.rendered_keys) == 30 and fake.design_calls == 5 and fake.lock_calls == 5  # + the narrator
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed()
    assert fake.engine_calls == 0
    assert report["counts"]["reused"] == 30


def test_editing_one_line_renders_one_line_and_remixes_one_scene(tmp_path, script, fake):
    out = tmp_path / "out"
    render(script, out)
    script.write_text(script.read_text().replace("You came to watch me pack.", "You came to watch me leave."))
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert len(fake.render_calls) == 1 and len(fake.rendered_keys) == 1
    assert fake.design_calls == 0 and fake.lock_calls == 0
    remixed = [s["scene"] for s in report["scenes"] if not s["cached"]]
    assert remixed == ["2"]
    assert report["counts"] == {"lines": 30, "rendered": 1, "reused": 29, "failed": 0}


def test_failed_scene_does_not_stop_others_and_rerun_completes_it(tmp_path, script, fake):
    out = tmp_path / "out"
    fake.fail_text("Still burning", "runaway: 31.0 s for 4 words")
    state, report = render(script, out)
    assert state.is_failed()
    assert "scene 3" in state.message and "line 61" in state.message and "runaway" in state.message
    assert {s["scene"]: s["status"] for s in report["scenes"]} == {"1": "done", "2": "done", "3": "failed",
                                                                 "4": "done"}
    assert report["counts"] == {"lines": 30, "rendered": 29, "reused": 0, "failed": 1}
    [failure] = report["failed_lines"]
    assert failure["character"] == "MARGARET" and failure["source_line"] == 61
    assert failure["reason"] == "runaway: 31.0 s for 4 words"
    assert report["outputs"] == {} and "some scenes failed" in report["master_note"]
    assert report["status"] == "failed"

    fake.clear_failures().reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert fake.rendered_keys == [failure["key"]]  # finished lines are not rendered again
    assert [s["scene"] for s in report["scenes"] if not s["cached"]] == ["3"]
    deliverables(out, report)


def test_scene_subset_and_force(tmp_path, script, fake):
    out = tmp_path / "out"
    state, report = render(script, out, scenes=["2", "4"])
    assert state.is_completed(), state.message
    assert [s["scene"] for s in report["scenes"]] == ["2", "4"]
    assert report["counts"]["lines"] == 14 and report["counts"]["rendered"] == 14
    assert report["outputs"] == {} and "--scenes" in report["master_note"]
    assert len(fake.rendered_keys) == 14

    fake.reset_counts()
    state, report = render(script, out, scenes=["4"], force=True)
    assert state.is_completed()
    assert len(fake.rendered_keys) == 5 and not report["scenes"][0]["cached"]
    assert fake.lock_calls == 5  # cast tasks ignore their caches too

    from flows.render import render_flow

    state = render_flow(str(script), str(out), engine="fake", scenes=["9"], return_state=True)
    assert state.is_failed() and "no scene 9" in state.message


def test_deleted_or_replaced_scene_file_is_remixed(tmp_path, script, fake):
    out = tmp_path / "out"
    render(script, out)
    victim = out / "scenes" / "scene-001.wav"
    original = victim.read_bytes()
    victim.unlink()
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed() and victim.read_bytes() == original
    assert fake.engine_calls == 0
    assert [s["scene"] for s in report["scenes"] if not s["cached"]] == ["1"]

    shutil.copy(out / "scenes" / "scene-002.wav", victim)  # another scene's audio under this name: stale
    state, report = render(script, out)
    assert state.is_completed() and victim.read_bytes() == original
    assert [s["scene"] for s in report["scenes"] if not s["cached"]] == ["1"]


def test_cast_flow_rows(tmp_path, script, fake):
    from flows.cast import cast_flow

    result = cast_flow(str(script), engine="fake")
    rows = {r["name"]: r for r in result["characters"]}
    assert list(rows) == ["MARGARET", "TOMAS", "JUNE", "OTTO", "NARRATOR"]
    for r in rows.values():
        assert Path(r["lock_path"]).is_file() and Path(r["audition"]).is_file()
        assert r["description"] and r["pick_reason"] and r["gender"]


def test_full_render_preview_engine_speaks_every_line(tmp_path, script):
    """The README's fresh-machine path: espeak-ng voices through the real flows, every deliverable, real speech."""
    pytest.importorskip("espeakng_loader")
    import soundfile as sf

    from pipeline.loudness import rms_db

    clear_engines()
    out = tmp_path / "out"
    state, report = render(script, out, engine="preview")
    assert state.is_completed(), state.message
    deliverables(out, report)
    assert report["engine"]["name"] == "preview" and report["engine"]["model_id"].startswith("espeak-ng")
    assert report["counts"] == {"lines": 30, "rendered": 30, "reused": 0, "failed": 0}
    cues = json.loads(Path(report["outputs"]["cues"]).read_text())
    master, rate = sf.read(report["outputs"]["master_wav"], dtype="float32")
    for cue in cues["lines"]:  # every cue holds audible speech, and longer lines last longer than short ones
        seg = master[cue["start_sample"]: cue["end_sample"]]
        assert len(seg) > 0.3 * rate and rms_db(seg) > -45, cue
    # OTTO's first speech is "(on the radio)": band-limited in the mix (little energy outside the radio band, where
    # a male voice's fundamental and the sibilants lie); every other line keeps it.
    def outside_band(cue):
        seg = master[cue["start_sample"]: cue["end_sample"]]
        spectrum, freqs = np.abs(np.fft.rfft(seg)) ** 2, np.fft.rfftfreq(len(seg), 1 / rate)
        far_outside = (freqs < 200) | (freqs >= 6000)  # clear of the filters' skirts
        return spectrum[far_outside].sum() / spectrum[(freqs >= 500) & (freqs < 2500)].sum()

    radio = [c for c in cues["lines"] if c["character"] == "OTTO" and "Lighthouse, lighthouse" in c["text"]]
    others = [outside_band(c) for c in cues["lines"] if c["character"] != "OTTO"]
    assert len(radio) == 1 and outside_band(radio[0]) < 0.1 * min(others)
    clear_engines()


@pytest.mark.tiny
def test_full_render_tiny_qwen3(tmp_path, script, tiny_models):
    pytest.importorskip("pipeline.engines.qwen3")
    clear_engines()
    out = tmp_path / "out"
    state, report = render(script, out, engine="qwen3", models_dir=str(tiny_models),
                           overrides={"casting.auditions": 2, "render.max_retakes": 3})
    assert report["engine"]["name"] == "qwen3"
    assert state.is_completed(), state.message
    deliverables(out, report)
    clear_engines()


def test_run_that_stops_early_still_writes_a_report(tmp_path, script, fake, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("voice design model is missing")

    monkeypatch.setattr(fake, "design", broken)
    out = tmp_path / "out"
    state, report = render(script, out)
    assert state.is_failed() and "voice design model is missing" in state.message
    assert report["status"] == "failed" and "voice design model is missing" in report["error"]
    assert report["engine"]["name"] == "fake"


def test_cast_flow_extras_share_a_pool_voice(tmp_path, script, fake):
    from flows.cast import cast_flow

    result = cast_flow(str(script), engine="fake", overrides={"casting.extras_max_lines": 2})
    rows = {r["name"]: r for r in result["characters"]}
    otto = rows["OTTO"]
    assert otto["source"] == "extra" and otto["extra_voice"] == "EXTRAS POOL 1"
    assert "2 lines" in otto["pick_reason"] and Path(otto["lock_path"]).is_file()
    assert otto["lock_path"] not in {r["lock_path"] for n, r in rows.items() if n != "OTTO"}


def test_cast_flow_rejects_a_missing_audition_pin_before_designing(tmp_path, script, fake):
    from flows.cast import cast_flow
    from pipeline.errors import CastFileError

    cast_file = tmp_path / "cast.toml"
    cast_file.write_text("[characters.MARGARET]\naudition = 9\n", encoding="utf-8")
    with pytest.raises(CastFileError, match=r"MARGARET.*audition 9 does not exist"):
        cast_flow(str(script), engine="fake", cast_file=str(cast_file))
    assert fake.design_calls == 0


def test_lines_render_in_chunks_and_scenes_mix_as_soon_as_their_lines_are_stored(tmp_path, script, fake):
    from flows.reporting import listen

    events: list[tuple[str, dict]] = []
    with listen(lambda event, payload: events.append((event, payload))):
        state, report = render(script, tmp_path / "out", overrides={"render.chunk_lines": 4})
    assert state.is_completed(), state.message
    names = [e for e, _ in events]
    assert [p["done"] for e, p in events if e == "chunk"] == list(range(1, 9))  # 30 lines (12 narration), 4 a chunk
    assert names.index("scene_done") < max(i for i, n in enumerate(names) if n == "line")  # scene 1 mixed early
    assert sum(1 for e, p in events if e == "line" and p["status"] == "rendered") == 30
    engine = report["engine"]
    assert engine["lines"] == 30 and engine["steps"] == len(fake.render_calls)
    assert engine["mean_busy_rows"] == pytest.approx(30 / len(fake.render_calls), abs=1e-3)
    assert report["counts"] == {"lines": 30, "rendered": 30, "reused": 0, "failed": 0}


def test_render_flow_routes_lines_to_delivery_variants_and_reruns_from_cache(tmp_path, script, fake):
    """The sample's (muttering), (smiling) and (quietly) with delivery.min_lines = 1: each gets a variant voice
    (the instant engine's vectors are all alike: min_similarity -1 keeps the closest take); the lines render with
    it and a rerun reuses every cast step and line."""
    out = tmp_path / "out"
    over = {"delivery.min_lines": 1, "delivery.min_similarity": -1.0, "delivery.auditions": 2}
    state, report = render(script, out, overrides=over)
    assert state.is_completed(), state.message
    variants = {name: sorted(c["variants"]) for name, c in report["cast"].items() if c["variants"]}
    assert variants == {"MARGARET": ["muttering", "warm"], "TOMAS": ["soft"]}
    cues = json.loads(Path(report["outputs"]["cues"]).read_text())
    muttered = [c for c in cues["lines"] if c["text"].startswith("Right on time")]
    assert len(muttered) == 1
    designs = fake.design_calls
    fake.reset_counts()
    state, again = render(script, out, overrides=over)
    assert state.is_completed() and fake.engine_calls == 0 and designs > 0
    assert again["counts"]["rendered"] == 0 and again["cast"] == report["cast"]
    # without variants, exactly the three directed lines get other keys
    fake.reset_counts()
    state, plain = render(script, tmp_path / "plain", overrides={**over, "delivery.mode": "off"})
    assert state.is_completed() and plain["counts"]["rendered"] == 3
    plain_cues = json.loads(Path(plain["outputs"]["cues"]).read_text())["lines"]
    moved = {c["text"][:20] for c, p in zip(cues["lines"], plain_cues) if c["key"] != p["key"]}
    assert moved == {"Right on time. He ne", "The new system would", "The boys would like "}


@pytest.mark.tiny
def test_tiny_qwen3_render_with_delivery_both(tmp_path, script, tiny_models):
    """The real qwen3 engine on tiny checkpoints through the render flow with delivery "both": the sample's
    (muttering), (smiling) and (quietly) lines get variant voices (VoiceDesign + x-vector gate + lock) and their
    instructs prefixed to the clone prompt. Tiny random models say nothing about how a shout sounds: this is
    plumbing."""
    clear_engines()
    over = {"casting.auditions": 2, "render.max_retakes": 3, "delivery.mode": "both", "delivery.min_lines": 1,
            "delivery.min_similarity": -1.0, "delivery.auditions": 2}
    state, report = render(script, tmp_path / "out", engine="qwen3", models_dir=str(tiny_models), overrides=over)
    assert state.is_completed(), state.message
    deliverables(tmp_path / "out", report)
    variants = {name: c["variants"] for name, c in report["cast"].items() if c["variants"]}
    assert {n: sorted(v) for n, v in variants.items()} == {"MARGARET": ["muttering", "warm"], "TOMAS": ["soft"]}
    for per in variants.values():
        for v in per.values():
            assert Path(v["lock_path"]).is_file() and -1.0 <= v["similarity"] <= 1.0
    clear_engines()
