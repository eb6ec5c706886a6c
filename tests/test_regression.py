"""pipeline.regression on synthetic renders: tones whose pitch is the voice and whose length and melody are the text,
laid out into scene files with a cue sheet exactly as the render flow writes them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

import numpy as np
import pytest

from pipeline.audio import Audio, write_audio
from pipeline.config import RegressionSettings
from pipeline.errors import RegressionError
from pipeline.cue_sheet import load_cue_sheet
from pipeline.deliver import write_cue_sheet
from pipeline.keys import content_key
from pipeline.regression.compare import compare
from pipeline.regression.golden import Golden, fingerprint_render, load_golden, save_golden
from pipeline.regression.measure import DB_FLOOR, integrated_loudness, mean_log_mel, measure, mel_filterbank
from pipeline.regression.report import to_junit_xml, to_markdown
from pipeline.render_report import REPORT_NAME, RenderReport, SceneRecord, save_render_report
from pipeline.timeline import SceneMixResult, TimedLine

SR = 16_000

SCRIPT = (
    (1, "EXT. GALLERY - NIGHT", "MARGARET", "Forty-one years I have kept this light."),
    (1, "EXT. GALLERY - NIGHT", "MARGARET", "Right on time."),
    (2, "INT. KITCHEN", "TOMAS", "The automation crew arrives at dawn."),
    (2, "INT. KITCHEN", "MARGARET", "You came to watch me pack."),
    (2, "INT. KITCHEN", "JUNE", "Mother, please."),
    (2, "INT. KITCHEN", "MARGARET", "Then he can drive two hours back."),
    (2, "INT. KITCHEN", "TOMAS", "It runs itself."),
    (3, "EXT. CLIFF PATH", "JUNE", "You could come and live with us."),
    (3, "EXT. CLIFF PATH", "MARGARET", "The boys would like the stories."),
)
VOICES = {"MARGARET": 180.0, "TOMAS": 110.0, "JUNE": 260.0}


@dataclass(frozen=True)
class Pauses:
    same_speaker: float = 0.25
    speaker_change: float = 0.5
    head: float = 0.3
    tail: float = 1.0


class DictStore:
    """The LineStore surface regression uses: has / get."""

    def __init__(self):
        self.audio: dict[str, Audio] = {}

    def has(self, key):
        return key in self.audio

    def get(self, key):
        return self.audio[key]


class SpectrumEngine:
    """A stand-in speaker encoder: the normalised linear mel spectrum (pitch moves it, timing does not)."""

    def speaker_embedding(self, audio: Audio):
        p = 10.0 ** (np.asarray(mean_log_mel(audio)) / 10.0)
        return p / np.linalg.norm(p)


def speak(text: str, f0: float) -> Audio:
    """A 'voice' at pitch f0 with a few harmonics; the text sets the length and a melody of its characters."""
    n = int(SR * (0.2 + 0.045 * len(text)))
    t = np.arange(n) / SR
    step = max(1, n // max(1, len(text)))
    melody = np.repeat([1.0 + (ord(ch) % 7) / 40.0 for ch in text], step)[:n]
    melody = np.pad(melody, (0, n - len(melody)), mode="edge")
    phase = 2 * np.pi * np.cumsum(f0 * melody) / SR
    wave = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return Audio((0.2 * wave * envelope).astype(np.float32), SR)


def render(out, script=SCRIPT, voices=VOICES, pauses=Pauses(), store=None):
    """Write scene WAVs, the cue sheet and render-report.json with the render flow's own writers; fill `store`."""
    store = store if store is not None else DictStore()
    mixes, records = [], []
    for index in sorted({s for s, *_ in script}):
        rows = [r for r in script if r[0] == index]
        parts, timed, prev = [np.zeros(int(SR * pauses.head), np.float32)], [], None
        pos = parts[0].size
        for k, (_, heading, who, text) in enumerate(rows):
            if k:
                gap = pauses.same_speaker if who == prev else pauses.speaker_change
                parts.append(np.zeros(int(round(SR * gap)), np.float32))
                pos += parts[-1].size
            key = content_key("line", "1", {"text": text, "voice": voices[who]})
            audio = speak(text, voices[who])
            store.audio[key] = audio
            parts.append(audio.samples)
            timed.append(TimedLine(key, who, text, pos, pos + audio.samples.size, SR, index, heading))
            pos += audio.samples.size
            prev = who
        parts.append(np.zeros(int(SR * pauses.tail), np.float32))
        samples = np.concatenate(parts)
        path = out / "scenes" / f"scene-{index:03d}.wav"
        write_audio(path, Audio(samples, SR))
        mixes.append(SceneMixResult(path, samples.size / SR, SR, tuple(timed), samples.size, 1, index, rows[0][1]))
        records.append(SceneRecord(scene=str(index), index=index, heading=rows[0][1], status="done", path=str(path),
                                   lines=len(rows)))
    sheet = write_cue_sheet(out / "sample.cues.json", mixes)
    save_render_report(out / REPORT_NAME, RenderReport(
        script="sample.fountain", script_name="sample", status="completed", engine={"name": "synthetic"},
        scenes=records, outputs={"cues": sheet.name}))  # a relative path: resolved against the render folder
    return store


def fingerprints(tmp_path, name, **kw) -> Golden:
    out = tmp_path / name
    out.mkdir()
    store = render(out, **kw)
    return fingerprint_render(out, store=store, engine=SpectrumEngine())


@pytest.fixture
def golden(tmp_path) -> Golden:
    return fingerprints(tmp_path, "golden")


def statuses(report):
    return {v.id: v.status for v in report.lines}


def flagged(report):
    return sorted(v.id for v in report.lines if v.failed)


# ----------------------------------------------------------------------------------------------- measurements


def test_measures_of_known_signals():
    tone = Audio((0.5 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)).astype(np.float32), SR)
    m = measure(tone)
    assert m.duration == 1.0
    assert m.rms_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    assert m.peak_db == pytest.approx(20 * np.log10(0.5), abs=0.05)
    assert m.loudness == pytest.approx(-9.0 + 0.0, abs=1.0)  # 1 kHz sine at -6 dBFS peak ≈ -9 LUFS (mono)
    assert len(m.mel_db) == 20 and int(np.argmax(m.mel_db)) == 6  # 1 kHz = 1000 mel: centre of band 6 (50 Hz..8 kHz in 21 steps)
    silence = measure(Audio(np.zeros(SR // 10, np.float32), SR))
    assert silence.loudness == silence.rms_db == silence.peak_db == DB_FLOOR


def test_short_clip_loudness_matches_its_longer_self():
    long = speak("A steady tone here.", 200.0)
    short = Audio(long.samples[: SR // 10], SR)  # 100 ms: shorter than one gating block
    assert integrated_loudness(short) == pytest.approx(integrated_loudness(long), abs=1.5)


def test_mel_filterbank_covers_the_spectrum():
    fb = mel_filterbank(24_000, 1024, 20)
    assert fb.shape == (20, 513) and fb.min() >= 0 and np.allclose(fb.max(axis=1), 1.0, atol=0.1)
    assert (fb.sum(axis=0)[5:-1] > 0).all()  # every bin above fmin falls in some band


# ----------------------------------------------------------------------------------------------- fingerprints


def test_fingerprints_name_lines_by_scene_character_and_ordinal(golden):
    ids = [line.id for line in golden.lines]
    assert ids[:3] == ["s1/MARGARET/1", "s1/MARGARET/2", "s2/TOMAS/1"]
    assert "s2/MARGARET/2" in ids and len(ids) == len(SCRIPT)
    assert all(line.source == "store" and line.xvector for line in golden.lines)
    assert [s.index for s in golden.scenes] == [1, 2, 3] and golden.scenes[1].heading == "INT. KITCHEN"
    assert golden.scenes[1].timings[0][0] == "s2/TOMAS/1" and golden.engine == {"name": "synthetic"}


def test_without_a_store_lines_are_slices_of_the_scene(tmp_path, golden):
    out = tmp_path / "nostore"
    out.mkdir()
    render(out)
    sliced = fingerprint_render(out)
    assert all(line.source == "scene" and line.xvector is None for line in sliced.lines)
    for a, b in zip(golden.lines, sliced.lines):
        assert a.audio.duration == pytest.approx(b.audio.duration, abs=1e-3)
        assert a.audio.loudness == pytest.approx(b.audio.loudness, abs=0.1)


def test_golden_roundtrip_is_stable_and_small(tmp_path, golden):
    path = save_golden(tmp_path / "g", golden)
    assert load_golden(tmp_path / "g") == golden
    text = path.read_text()
    save_golden(tmp_path / "g", load_golden(tmp_path / "g"))
    assert path.read_text() == text  # byte-stable: re-saving changes nothing
    assert len(text) < 40_000 and text.count("\n") < 40  # one text line per scene or line: diffs show the line
    json.loads(text)


def test_missing_or_stale_golden_says_how_to_fix(tmp_path, golden):
    with pytest.raises(RegressionError, match="--update"):
        load_golden(tmp_path / "nowhere")
    path = save_golden(tmp_path / "g", golden)
    path.write_text(path.read_text().replace('"version": 1', '"version": 999'))
    with pytest.raises(RegressionError, match="version 999.*--update"):
        load_golden(tmp_path / "g")


def test_render_folder_without_cue_sheet_is_an_error(tmp_path):
    with pytest.raises(RegressionError, match="No cue sheet"):
        fingerprint_render(tmp_path)


# ------------------------------------------------------------------------------------------------- comparison


def test_unchanged_render_passes_exactly(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "again"), RegressionSettings())
    assert report.ok and report.exact
    assert set(statuses(report).values()) == {"same"}
    assert all(s.status == "same" for s in report.scenes)
    assert {s.character for s in report.speakers} == set(VOICES) and all(s.similarity > 0.999 for s in report.speakers)


def test_float_noise_is_within_tolerance_not_same(tmp_path, golden):
    """Another machine: every sample off by float noise. Not exact, but no regression."""
    rng = np.random.default_rng(0)

    class NoisyStore(DictStore):
        def get(self, key):
            a = self.audio[key]
            return Audio(a.samples + rng.normal(0, 1e-6, a.samples.shape).astype(np.float32), a.sample_rate)

    out = tmp_path / "noisy"
    out.mkdir()
    store = render(out, store=NoisyStore())
    report = compare(golden, fingerprint_render(out, store=store, engine=SpectrumEngine()))
    assert report.ok and not report.exact
    assert set(statuses(report).values()) == {"within"}
    assert "Exact sample match: 0/9" in to_markdown(report)
    strict = compare(golden, fingerprint_render(out, store=store), RegressionSettings(require_exact=True))
    assert not strict.ok


def test_changing_one_lines_text_flags_exactly_that_line(tmp_path, golden):
    script = tuple(r if r[3] != "Mother, please." else (*r[:3], "Mother, please, stop it now.") for r in SCRIPT)
    report = compare(golden, fingerprints(tmp_path, "edit", script=script))
    assert not report.ok
    assert flagged(report) == ["s2/JUNE/1"]
    v = next(v for v in report.lines if v.failed)
    assert v.status == "changed" and v.key_changed and v.golden_text == "Mother, please."
    assert v.reasons[0].startswith("text changed") and any("duration" in r for r in v.reasons)
    assert statuses(report)["s2/MARGARET/2"] == "same"  # later lines moved in the scene but their pauses did not
    assert [s.status for s in report.scenes] == ["same", "changed", "same"]


def test_changing_a_pause_setting_flags_timing_not_speaker(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "pause", pauses=Pauses(same_speaker=0.6)))
    assert not report.ok
    assert flagged(report) == ["s1/MARGARET/2"]  # the only line that follows its own speaker
    v = next(v for v in report.lines if v.failed)
    assert v.exact and v.deltas["timing"] == pytest.approx(0.35, abs=1e-3)
    assert len(v.reasons) == 1 and v.reasons[0].startswith("timing")
    assert all(s.ok and s.similarity > 0.999 for s in report.speakers)
    scene1 = report.scenes[0]
    assert scene1.status == "changed" and scene1.deltas["duration"] == pytest.approx(0.35, abs=1e-3)


def test_scene_head_pause_shows_as_timing_of_first_lines(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "head", pauses=Pauses(head=0.5)))
    assert flagged(report) == ["s1/MARGARET/1", "s2/TOMAS/1", "s3/JUNE/1"]
    assert all(s.deltas["max_shift"] == pytest.approx(0.2, abs=1e-3) for s in report.scenes)


def test_changing_a_voice_seed_flags_that_characters_lines(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "voice", voices={**VOICES, "TOMAS": 210.0}))
    assert not report.ok
    assert flagged(report) == ["s2/TOMAS/1", "s2/TOMAS/2"]
    for v in report.lines:
        if v.failed:
            assert v.key_changed and v.golden_text == v.text
            assert any(r.startswith("spectrum") for r in v.reasons)
    speakers = {s.character: s for s in report.speakers}
    assert not speakers["TOMAS"].ok and speakers["MARGARET"].ok and speakers["JUNE"].ok


def test_deleting_a_line_reports_it_missing(tmp_path, golden):
    script = tuple(r for r in SCRIPT if r[3] != "You came to watch me pack.")
    report = compare(golden, fingerprints(tmp_path, "cut", script=script))
    assert not report.ok
    missing = [v for v in report.lines if v.status == "missing"]
    assert [v.text for v in missing] == ["You came to watch me pack."] and missing[0].id == "s2/MARGARET/1"
    assert flagged(report) == ["s2/MARGARET/1"]  # its neighbours keep their verdict: aligned by text
    assert report.counts()["missing"] == 1 and report.counts()["new"] == 0


def test_added_line_and_scene_are_new(tmp_path, golden):
    script = SCRIPT + ((4, "INT. BOAT", "OTTO", "Still burning."),)
    report = compare(golden, fingerprints(tmp_path, "more", script=script, voices={**VOICES, "OTTO": 320.0}))
    assert flagged(report) == ["s4/OTTO/1"] and report.lines[-1].status == "new"
    assert report.scenes[-1].status == "new" and not report.ok


def test_junit_xml_parses_with_the_right_counts(tmp_path, golden):
    script = tuple(r for r in SCRIPT if r[3] != "Right on time.")
    script = tuple(r if r[3] != "It runs itself." else (*r[:3], "It runs itself, mostly.") for r in script)
    report = compare(golden, fingerprints(tmp_path, "two", script=script))
    root = ET.fromstring(to_junit_xml(report))
    lines = root.find("testsuite[@name='sample.lines']")
    assert lines is not None
    cases = lines.findall("testcase")
    assert len(cases) == int(lines.get("tests")) == len(SCRIPT)  # one testcase per golden line
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert sorted(failures) == ["s1/MARGARET/2", "s2/TOMAS/2"] and lines.get("failures") == "2"
    assert failures["s1/MARGARET/2"].get("message").startswith("missing")
    assert "text changed" in failures["s2/TOMAS/2"].get("message")
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in root.findall("testsuite"))
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in root.findall("testsuite")) >= 2


def test_junit_and_markdown_of_a_pass(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "ok"))
    root = ET.fromstring(to_junit_xml(report))
    assert root.get("failures") == "0" and root.findall(".//failure") == []
    md = to_markdown(report)
    assert "PASSED" in md and "9/9 lines (bit-identical render)" in md and "## Speakers" in md


def test_markdown_names_the_changed_line(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "md", voices={**VOICES, "JUNE": 300.0}))
    md = to_markdown(report)
    assert "FAILED" in md and "`s2/JUNE/1`" in md and "`s3/JUNE/1`" in md and "`s2/TOMAS/1`" not in md
    assert "| JUNE |" in md and "**no**" in md


def test_report_json_is_serialisable(tmp_path, golden):
    report = compare(golden, fingerprints(tmp_path, "j", pauses=Pauses(speaker_change=0.7)))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["counts"]["changed"] == 5 and data["exact_lines"] == 9


def test_loudness_change_within_and_beyond_tolerance(golden):
    def scaled(db):
        lines = tuple(
            replace(line, audio=replace(line.audio, loudness=line.audio.loudness + db, rms_db=line.audio.rms_db + db))
            if line.character == "JUNE" else line for line in golden.lines
        )
        return replace(golden, lines=lines)

    assert compare(golden, scaled(0.5)).ok
    report = compare(golden, scaled(2.0))
    assert flagged(report) == ["s2/JUNE/1", "s3/JUNE/1"]
    assert any(r.startswith("loudness +2.000") for r in report.lines[4].reasons)


def test_reads_the_assembly_cue_sheet_with_master_relative_times(tmp_path):
    """The render flow's cue sheet: master-relative start/end, scene-relative scene_start/scene_end, sample
    positions on the master; scene files named by render-report.json (0-based scene indexes)."""
    out = tmp_path / "render"
    a, b = speak("First line here.", 150.0), speak("Second.", 220.0)
    pad = np.zeros(SR // 2, np.float32)
    scene0 = np.concatenate([pad, a.samples, pad])
    scene1 = np.concatenate([pad, b.samples, pad])
    write_audio(out / "scenes" / "scene-001.wav", Audio(scene0, SR))
    write_audio(out / "scenes" / "scene-002.wav", Audio(scene1, SR))
    pa, pb = out / "scenes" / "scene-001.wav", out / "scenes" / "scene-002.wav"
    line_a = TimedLine("line-a", "ANA", "First line here.", SR // 2, SR // 2 + a.samples.size, SR, 1, "H1")
    line_b = TimedLine("line-b", "BO", "Second.", SR // 2, SR // 2 + b.samples.size, SR, 3, "H3")
    mixes = [SceneMixResult(pa, scene0.size / SR, SR, (line_a,), scene0.size, 1, 1, "H1"),
             SceneMixResult(pb, scene1.size / SR, SR, (line_b,), scene1.size, 1, 3, "H3")]
    sheet = write_cue_sheet(out / "title.cues.json", mixes)
    assert load_cue_sheet(sheet).lines[1].start_sample == scene0.size + SR // 2  # master-relative on the sheet
    save_render_report(out / REPORT_NAME, RenderReport(
        script="/x/title.fountain", script_name="title", status="completed",
        engine={"name": "qwen3", "model_id": str(tmp_path / "models" / "base"), "reason": "auto: found"},
        scenes=[SceneRecord(scene="1", index=1, heading="H1", status="done", path=str(pa)),
                SceneRecord(scene="2", index=3, heading="H3", status="done", path=str(pb))],
        outputs={"cues": str(sheet)}))
    g = fingerprint_render(out)
    assert [(x.id, x.start, x.gap) for x in g.lines] == [("s1/ANA/1", 0.5, 0.5), ("s3/BO/1", 0.5, 0.5)]
    assert g.lines[0].audio.digest == a.digest() and g.lines[1].audio.digest == b.digest()  # exact slices
    assert [(s.index, s.file) for s in g.scenes] == [(1, "scenes/scene-001.wav"), (3, "scenes/scene-002.wav")]
    assert g.script == "title" and g.engine == {"name": "qwen3", "model_id": "local:base"}  # portable


def test_fingerprints_roundtrip_through_json(golden):
    for line in golden.lines:
        assert type(line).from_dict(json.loads(json.dumps(line.to_dict()))) == line
    for scene in golden.scenes:
        assert type(scene).from_dict(json.loads(json.dumps(scene.to_dict()))) == scene


def test_a_golden_from_another_engine_is_explained(golden):
    other = replace(golden, engine={"name": "preview"})
    report = compare(golden, other)
    assert report.ok and len(report.notes) == 1
    assert "(name='synthetic'; this render: name='preview')" in report.notes[0]
    assert "> The golden was made with another engine" in to_markdown(report)
    assert compare(golden, golden).notes == ()


def test_spectral_comparison_ignores_near_silent_bands(golden):
    line = golden.lines[0]
    loud = max(line.audio.mel_db)
    mel = tuple(v - 20.0 if v < loud - 70 else v for v in line.audio.mel_db)  # near-silent bands moved
    assert mel != line.audio.mel_db
    moved = replace(golden, lines=(replace(line, audio=replace(line.audio, mel_db=mel)), *golden.lines[1:]))
    assert compare(golden, moved).ok
    audible = tuple(v + 4.0 if v == loud else v for v in line.audio.mel_db)  # the loudest band moved 4 dB
    moved = replace(golden, lines=(replace(line, audio=replace(line.audio, mel_db=audible)), *golden.lines[1:]))
    assert flagged(compare(golden, moved)) == [line.id]
