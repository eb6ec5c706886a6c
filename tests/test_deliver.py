"""Cue sheet, subtitles, Audacity labels and chapter markers: times are the sample positions actually written."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import RATE, line, read_flac_chapters, read_wav_chapters, runs

from pipeline.assemble import assemble_master, mix_scene
from pipeline.timeline import Chapter, TimedLine
from pipeline.config import Settings
from pipeline.deliver import (
    add_flac_chapters,
    add_wav_chapters,
    ffmetadata,
    timeline_cues,
    write_audacity_labels,
    write_cue_sheet,
    write_deliverables,
    write_srt,
    write_vtt,
)


def cue(start, end, character="MARGARET", text="Hello there.", scene=0, key="k"):
    return TimedLine(key, character, text, start, end, RATE, scene, "INT. HALL - NIGHT")


def test_srt_format_and_millisecond_rounding(tmp_path):
    cues = [cue(36_001, 48_012), cue(3_600 * RATE + 12, 3_600 * RATE + 11, "JO", "A < B & C")]
    text = write_srt(tmp_path / "a.srt", cues).read_text()
    assert text == (
        "1\n00:00:01,500 --> 00:00:02,001\nMARGARET: Hello there.\n\n"
        "2\n01:00:00,001 --> 01:00:00,000\nJO: A < B & C\n"
    )  # 12 samples = 0.5 ms rounds up; 11 samples rounds down


def test_vtt_uses_voice_spans_and_escapes(tmp_path):
    text = write_vtt(tmp_path / "a.vtt", [cue(0, 24_000, "JO", "A < B & C")]).read_text()
    assert text == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<v JO>A &lt; B &amp; C\n"


def test_long_lines_wrap_without_changing_times(tmp_path):
    long = "word " * 30
    text = write_srt(tmp_path / "a.srt", [cue(0, RATE, text=long)]).read_text()
    rows = text.splitlines()[2:]
    assert len(rows) > 2 and all(len(r) <= 42 for r in rows)
    assert text.splitlines()[1] == "00:00:00,000 --> 00:00:01,000"


def test_audacity_labels(tmp_path):
    text = write_audacity_labels(tmp_path / "l.txt", [cue(12_000, 36_000)]).read_text()
    assert text == "0.500000\t1.500000\tMARGARET: Hello there.\n"


def _srt_times(text: str) -> list[tuple[float, float]]:
    def sec(t):
        h, m, s = t.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    return [(sec(a), sec(b)) for a, b in re.findall(r"(\S+) --> (\S+)", text)]


@pytest.fixture
def rendered(tmp_path):
    """Two mixed scenes (the second with dual dialogue) and their master."""
    s = Settings()
    d = tmp_path / "lines"
    scene_lines = [
        [line(d, "a1", "MARGARET", 13_333, seed=1), line(d, "b1", "TOM", 9_001, seed=2)],
        [
            line(d, "a2", "MARGARET", 20_000, seed=3, dual_group=1, dual_side=0),
            line(d, "b2", "TOM", 11_111, seed=4, dual_group=1, dual_side=1),
            line(d, "a3", "MARGARET", 7_777, seed=5, pause_before=0.8),
        ],
    ]
    scenes = [
        mix_scene(lines, tmp_path / "scenes" / f"s{i}", s, scene_index=i + 1, heading=f"SCENE {i + 1}")
        for i, lines in enumerate(scene_lines)
    ]
    return scenes, assemble_master(scenes, tmp_path / "out", s, title="Deliver Test")


def test_subtitles_and_cue_sheet_match_the_master_audio(tmp_path, rendered):
    scenes, master = rendered
    data, rate = sf.read(str(master.path))
    # find every line in the written master: dual lines overlap, so compare onsets and the merged runs
    found = runs(data)
    cues = sorted(master.cues, key=lambda c: c.start_sample)  # ties (the dual pair) in script order
    assert {r[0] for r in found} <= {c.start_sample for c in cues}
    assert cues[2].start_sample == cues[3].start_sample  # the dual pair starts together

    srt = _srt_times(write_srt(tmp_path / "m.srt", master).read_text())
    vtt = _srt_times(write_vtt(tmp_path / "m.vtt", master).read_text())
    sheet = json.loads(write_cue_sheet(tmp_path / "m.json", master).read_text())
    rows = sorted(sheet["lines"], key=lambda r: r["start_sample"])
    for c, (s0, s1), (v0, v1), row in zip(cues, srt, vtt, rows):
        assert abs(s0 - c.start_sample / rate) <= 0.0005 and abs(s1 - c.end_sample / rate) <= 0.0005
        assert (v0, v1) == (s0, s1)
        assert (row["start"], row["end"]) == (s0, s1)
        assert data[c.start_sample] != 0 and (c.start_sample == 0 or data[c.start_sample - 1] == 0 or c.dual_group)
    assert [r["key"] for r in sheet["lines"]] == ["a1", "b1", "a2", "b2", "a3"]
    assert sheet["lines"][0]["character"] == "MARGARET" and sheet["lines"][0]["heading"] == "SCENE 1"
    assert [sc["start_sample"] for sc in sheet["scenes"]] == [0, scenes[0].frames]


def test_cue_sheet_from_scenes_equals_the_one_from_the_master(tmp_path, rendered):
    scenes, master = rendered
    assert timeline_cues(scenes) == master.cues
    from_scenes = json.loads(write_cue_sheet(tmp_path / "a.json", scenes).read_text())
    from_master = json.loads(write_cue_sheet(tmp_path / "b.json", master).read_text())
    assert from_scenes["lines"] == from_master["lines"]
    second = [r for r in from_scenes["lines"] if r["scene"] == 2]
    assert second[0]["scene_start"] == pytest.approx(scenes[1].cues[0].start, abs=0.0005)
    assert from_scenes["scenes"][1]["file"] == str(scenes[1].path)


def test_write_deliverables(tmp_path, rendered):
    _, master = rendered
    written = write_deliverables(master, tmp_path / "d")
    assert {p.name for p in written.values()} == {
        "deliver-test.cues.json", "deliver-test.srt", "deliver-test.vtt", "deliver-test.labels.txt"}  # fmt: skip
    assert set(write_deliverables(master, tmp_path / "e", subtitles=False)) == {"cues"}


def _chapters(n_frames: int) -> list[Chapter]:
    return [Chapter(1, "INT. HALL", 0, 1000, RATE), Chapter(2, "EXT. GÄRDEN — DAY", 1000, n_frames, RATE)]


def test_wav_cue_points_round_trip_and_stay_playable(tmp_path):
    path = tmp_path / "m.wav"
    audio = np.linspace(-0.5, 0.5, 4001)
    sf.write(str(path), audio, RATE, subtype="PCM_24")
    add_wav_chapters(path, _chapters(4001), title="Title")
    assert read_wav_chapters(path) == [(0, "INT. HALL"), (1000, "EXT. GÄRDEN — DAY")]
    back, rate = sf.read(str(path))
    assert rate == RATE and len(back) == 4001 and np.allclose(back, audio, atol=1e-6)
    assert path.stat().st_size % 2 == 0


def test_wav_chapters_refuse_non_wav(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="not a RIFF/WAVE"):
        add_wav_chapters(path, _chapters(10))


def test_flac_chapters_round_trip(tmp_path):
    from mutagen.flac import FLAC

    path = tmp_path / "m.flac"
    sf.write(str(path), np.zeros(4001), RATE, subtype="PCM_24")
    assert add_flac_chapters(path, _chapters(4001), total_frames=4001, title="T") == []
    assert read_flac_chapters(path) == [(0, "INT. HALL"), (1000, "EXT. GÄRDEN — DAY")]
    tags = FLAC(str(path))
    assert tags["CHAPTER002"] == ["00:00:00.042"] and tags.cuesheet.tracks[-1].track_number == 255
    assert sf.info(str(path)).frames == 4001


def test_ffmetadata_escapes_and_uses_sample_timebase():
    text = ffmetadata([Chapter(1, "A=B; #1", 5, 10, RATE)], "My \\ Title")
    assert text.startswith(";FFMETADATA1\ntitle=My \\\\ Title\n")
    assert f"TIMEBASE=1/{RATE}\nSTART=5\nEND=10\ntitle=A\\=B\\; \\#1\n" in text


def test_dual_dialogue_pair_is_listed_in_script_order(tmp_path, rendered):
    """The two speeches start at one sample; the first in the script (the longer one here) is listed first in the
    subtitles, the labels and the cue sheet — not the one that ends first."""
    _, master = rendered
    written = write_deliverables(master, tmp_path / "d")
    srt = written["srt"].read_text()
    vtt = written["vtt"].read_text()
    labels = written["labels"].read_text()
    cues = json.loads(written["cues"].read_text())["lines"]
    keys = [c["key"] for c in cues]
    assert keys.index("a2") < keys.index("b2") < keys.index("a3")
    speakers = re.findall(r"^(MARGARET|TOM):", srt, flags=re.M)
    assert speakers == ["MARGARET", "TOM", "MARGARET", "TOM", "MARGARET"]
    assert re.findall(r"<v (\w+)>", vtt) == speakers
    assert [row.split("\t")[2].split(":")[0] for row in labels.splitlines()] == speakers
