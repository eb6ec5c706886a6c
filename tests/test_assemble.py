"""Scene mixes and the master, with synthetic line audio of known length."""

from __future__ import annotations

import os
import stat

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from audio_fixtures import RATE, line, noise, read_flac_chapters, read_wav_chapters, runs, tone, write_line

from pipeline import loudness as ld
from pipeline.assemble import MixLine, assemble_master, mix_scene, plan_scene
from pipeline.timeline import SceneMixResult
from pipeline.config import Settings
from pipeline.errors import RenderError, SettingsError


def settings(**overrides) -> Settings:
    return Settings().with_overrides(overrides)


def frames(seconds: float) -> int:
    return int(round(seconds * RATE))


@pytest.fixture
def lines_dir(tmp_path):
    return tmp_path / "lines"


def three_lines(d):
    return [
        line(d, "a1", "ANNA", 12_000, seed=1),
        line(d, "a2", "ANNA", 7_001, seed=2),
        line(d, "b1", "BEN", 30_000, seed=3, pause_before=0.4),
    ]


def test_scene_length_is_lines_plus_pauses_exactly(tmp_path, lines_dir):
    s = settings()
    p = s.pauses
    res = mix_scene(three_lines(lines_dir), tmp_path / "scene-1", s, scene_index=1, heading="INT. KITCHEN - DAY")
    expected = (
        frames(p.scene_head) + 12_000 + frames(p.same_speaker) + 7_001
        + frames(p.speaker_change + 0.4) + 30_000 + frames(p.scene_tail)
    )  # fmt: skip
    hop = RATE // 10  # the tail is padded to a whole number of 100 ms gating hops (the master's blocks line up)
    padded = -(-expected // hop) * hop
    assert expected < padded < expected + hop
    assert res.path.suffix == ".wav" and res.path.is_file()
    assert res.frames == padded == sf.info(str(res.path)).frames
    assert res.duration == padded / RATE
    starts = [c.start_sample for c in res.cues]
    assert starts == [
        frames(p.scene_head),
        frames(p.scene_head) + 12_000 + frames(p.same_speaker),
        frames(p.scene_head) + 12_000 + frames(p.same_speaker) + 7_001 + frames(p.speaker_change + 0.4),
    ]
    assert [c.end_sample - c.start_sample for c in res.cues] == [12_000, 7_001, 30_000]
    assert all(c.scene_index == 1 and c.heading == "INT. KITCHEN - DAY" for c in res.cues)


def test_cues_are_the_sample_positions_written(tmp_path, lines_dir):
    res = mix_scene(three_lines(lines_dir), tmp_path / "s.wav", settings(), scene_index=0, heading=None)
    data, rate = sf.read(str(res.path))
    assert rate == RATE
    assert runs(data) == [(c.start_sample, c.end_sample) for c in res.cues]
    for c in res.cues:
        assert c.start == c.start_sample / RATE and c.end == c.end_sample / RATE


def test_lines_at_other_rates_are_resampled(tmp_path, lines_dir):
    path = write_line(lines_dir, "x", noise(16_000), rate=16_000)  # one second at 16 kHz
    res = mix_scene([MixLine("x", "ANNA", "Hi.", path)], tmp_path / "s", settings(), scene_index=0, heading=None)
    assert res.sample_rate == RATE
    assert res.cues[0].end_sample - res.cues[0].start_sample == RATE


def test_dual_dialogue_speeches_start_together(tmp_path, lines_dir):
    d = lines_dir
    lines = [
        line(d, "a", "ANNA", 10_000, seed=1),
        line(d, "b1", "BEN", 20_000, seed=2, dual_group=1, dual_side=0),
        line(d, "b2", "BEN", 6_000, seed=3, dual_group=1, dual_side=0),
        line(d, "c1", "CARA", 15_000, seed=4, dual_group=1, dual_side=1),
        line(d, "d", "DAN", 8_000, seed=5),
    ]
    s = settings()
    p = s.pauses
    res = mix_scene(lines, tmp_path / "s", s, scene_index=0, heading=None)
    cue = {c.key: c for c in res.cues}
    block = frames(p.scene_head) + 10_000 + frames(p.speaker_change)
    assert cue["b1"].start_sample == cue["c1"].start_sample == block
    assert cue["b2"].start_sample == block + 20_000 + frames(p.same_speaker)
    assert cue["d"].start_sample == cue["b2"].end_sample + frames(p.speaker_change)
    data, _ = sf.read(str(res.path))
    starts = [r[0] for r in runs(data)]
    assert block in starts  # the overlapped speeches begin at one sample in the file
    assert np.max(np.abs(data)) <= 10 ** (s.loudness.true_peak_db / 20)
    # in mono the overlapped region is not louder than a single speech by more than a little
    both = data[block : block + 15_000]
    alone = data[cue["d"].start_sample : cue["d"].end_sample]
    assert ld.rms_db(both) - ld.rms_db(alone) < 1.0


def test_stereo_pans_dual_speeches_apart(tmp_path, lines_dir):
    d = lines_dir
    lines = [
        line(d, "a", "ANNA", 12_000, seed=1),
        line(d, "b", "BEN", 12_000, seed=2, dual_group=7, dual_side=0),
        line(d, "c", "CARA", 12_000, seed=3, dual_group=7, dual_side=1),
    ]
    res = mix_scene(lines, tmp_path / "s", settings(**{"output.stereo": True}), scene_index=0, heading=None)
    data, _ = sf.read(str(res.path), always_2d=True)
    assert data.shape[1] == 2 and res.channels == 2
    cue = {c.key: c for c in res.cues}
    centre = data[cue["a"].start_sample : cue["a"].end_sample]
    assert np.allclose(centre[:, 0], centre[:, 1], atol=1e-6)
    # Ben (left) and Cara (right) overlap; their difference L-R is Ben's minus Cara's weight, non-zero
    seg = data[cue["b"].start_sample : cue["b"].end_sample]
    ben = noise(12_000, 0.1, 2).astype(np.float64)
    cara = noise(12_000, 0.1, 3).astype(np.float64)
    assert np.corrcoef(seg[:, 0], ben)[0, 1] > np.corrcoef(seg[:, 0], cara)[0, 1] + 0.2
    assert np.corrcoef(seg[:, 1], cara)[0, 1] > np.corrcoef(seg[:, 1], ben)[0, 1] + 0.2


def test_scene_loudness_and_peak_meet_target(tmp_path, lines_dir):
    d = lines_dir
    clicks = tone(36_000, 300, 0.05)
    clicks[::2_000] = 0.9  # sharp peaks force the limiter to work
    lines = [
        line(d, "quiet", "ANNA", 24_000, amp=0.005, seed=1),
        MixLine("clicky", "BEN", "Tick.", write_line(d, "clicky", clicks)),
        line(d, "loud", "ANNA", 30_000, amp=0.6, seed=2),
    ]
    s = settings()
    res = mix_scene(lines, tmp_path / "s", s, scene_index=0, heading=None)
    data, _ = sf.read(str(res.path))
    assert abs(pyloudnorm.Meter(RATE).integrated_loudness(data) - s.loudness.target_lufs) <= 0.5
    assert ld.true_peak_db(data) <= s.loudness.true_peak_db + 1e-3
    assert np.max(np.abs(data)) <= 10 ** (s.loudness.true_peak_db / 20)
    # each line was brought to a common level before mixing: quiet and loud lines end up matched
    cue = {c.key: c for c in res.cues}
    q = ld.measure_lufs(data[cue["quiet"].start_sample : cue["quiet"].end_sample], RATE)
    loud = ld.measure_lufs(data[cue["loud"].start_sample : cue["loud"].end_sample], RATE)
    assert abs(q - loud) < 0.5


def test_acx_preset_meets_its_ranges(tmp_path, lines_dir):
    s = settings(**{"loudness.preset": "acx"})
    res = mix_scene(three_lines(lines_dir), tmp_path / "s", s, scene_index=0, heading=None)
    data, _ = sf.read(str(res.path))
    check = ld.check_acx(data, RATE, s.loudness)
    lo, hi = s.loudness.acx_rms_range
    assert lo <= check.rms_db <= hi
    assert check.peak_db <= s.loudness.acx_peak_db
    assert check.ok, check.problems


def test_short_and_silent_lines_do_not_break_the_mix(tmp_path, lines_dir):
    d = lines_dir
    lines = [
        line(d, "short", "ANNA", 2_400, seed=1),  # 0.1 s: too short for a gating block, RMS fallback
        MixLine("silent", "BEN", "…", write_line(d, "silent", np.zeros(6_000, np.float32))),
        line(d, "long", "ANNA", 24_000, seed=2),
    ]
    res = mix_scene(lines, tmp_path / "s", settings(), scene_index=0, heading=None)
    data, _ = sf.read(str(res.path))
    cue = {c.key: c for c in res.cues}
    assert not np.any(data[cue["silent"].start_sample : cue["silent"].end_sample])
    assert np.all(np.isfinite(data))


def test_flac_scene_format(tmp_path, lines_dir):
    res = mix_scene(three_lines(lines_dir), tmp_path / "s.wav", settings(**{"output.format": "flac"}),
                    scene_index=0, heading=None)  # fmt: skip
    assert res.path.suffix == ".flac" and sf.info(str(res.path)).format == "FLAC"


def test_missing_line_audio_names_the_line(tmp_path):
    bad = MixLine("k123", "ANNA", "Where is it?", tmp_path / "nope.wav")
    with pytest.raises(RenderError, match="k123.*ANNA.*Render the script again"):
        mix_scene([bad], tmp_path / "s", settings(), scene_index=0, heading=None)


def test_plan_scene_without_lines_is_head_plus_tail():
    s = settings()
    placements, total = plan_scene([], [], s, RATE)
    assert placements == [] and total == frames(s.pauses.scene_head + s.pauses.scene_tail)


def _temp_files(folder):
    return [p for p in folder.iterdir() if p.name.startswith(".")]


def test_failed_rerender_keeps_the_old_scene(tmp_path, lines_dir, monkeypatch):
    out = tmp_path / "out"
    first = mix_scene(three_lines(lines_dir), out / "s", settings(), scene_index=0, heading=None)
    before = first.path.read_bytes()
    real_write = sf.SoundFile.write

    def half_write(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(sf.SoundFile, "write", half_write)
    with pytest.raises(OSError, match="disk full"):
        mix_scene(three_lines(lines_dir)[:2], out / "s", settings(), scene_index=0, heading=None)
    assert first.path.read_bytes() == before
    assert _temp_files(out) == []


# ---------------------------------------------------------------- master


def make_scenes(tmp_path, s: Settings, count: int = 3) -> list[SceneMixResult]:
    d = tmp_path / "lines"
    scenes = []
    for i in range(count):
        lines = [
            line(d, f"s{i}a", "ANNA", 10_000 + 1_000 * i, seed=10 * i + 1, amp=0.05 * (i + 1)),
            line(d, f"s{i}b", "BEN", 14_000, seed=10 * i + 2),
        ]
        scenes.append(mix_scene(lines, tmp_path / "scenes" / f"scene-{i}", s, scene_index=i, heading=f"SCENE {i}"))
    return scenes


def test_master_concatenates_scenes_with_chapters(tmp_path):
    s = settings()
    scenes = make_scenes(tmp_path, s)
    master = assemble_master(scenes, tmp_path / "out", s, title="The Test Script")
    assert master.path == tmp_path / "out" / "the-test-script.wav"
    assert master.frames == sum(sc.frames for sc in scenes) == sf.info(str(master.path)).frames
    offsets = np.cumsum([0] + [sc.frames for sc in scenes[:-1]]).tolist()
    assert read_wav_chapters(master.path) == [(o, f"SCENE {i}") for i, o in enumerate(offsets)]
    assert [c.start_sample for c in master.chapters] == offsets
    data, _ = sf.read(str(master.path))
    assert runs(data) == [(c.start_sample, c.end_sample) for c in master.cues]
    assert abs(pyloudnorm.Meter(RATE).integrated_loudness(data) - s.loudness.target_lufs) <= 0.5
    assert abs(master.lufs - s.loudness.target_lufs) <= 0.5
    assert ld.true_peak_db(data) <= s.loudness.true_peak_db + 1e-3
    assert master.notes == ()


def test_flac_master_chapters_read_back_with_mutagen(tmp_path):
    from mutagen.flac import FLAC

    s = settings(**{"output.format": "flac", "output.master_formats": ["flac", "wav"]})
    scenes = make_scenes(tmp_path, s, count=2)
    master = assemble_master(scenes, tmp_path / "out", s, title="Flac Script")
    assert master.path.suffix == ".flac" and set(master.paths) == {"flac", "wav"}
    expected = [(0, "SCENE 0"), (scenes[0].frames, "SCENE 1")]
    assert read_flac_chapters(master.path) == expected
    assert read_wav_chapters(master.paths["wav"]) == expected
    tags = FLAC(str(master.path))
    assert tags["TITLE"] == ["Flac Script"] and tags["CHAPTER002NAME"] == ["SCENE 1"]
    a, _ = sf.read(str(master.path))
    b, _ = sf.read(str(master.paths["wav"]))
    assert np.array_equal(a, b)


def test_compressed_masters_need_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    s = settings(**{"output.master_formats": ["wav", "m4b"]})
    master = assemble_master(make_scenes(tmp_path, s, 1), tmp_path / "out", s, title="T")
    assert set(master.paths) == {"wav"}
    assert any("m4b" in n and "ffmpeg" in n for n in master.notes)


def test_compressed_master_through_ffmpeg_gets_chapter_metadata(tmp_path, monkeypatch):
    """A stand-in ffmpeg records its arguments and metadata file; the real encoder is not needed here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    log = tmp_path / "ffmpeg.log"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {log}\n'
        'meta=""; prev=""; for a in "$@"; do if [ "$prev" = "-i" ]; then meta="$a"; fi; prev="$a"; last="$a"; done\n'
        f'cat "$meta" >> {log}\n'
        'printf encoded > "$last"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    s = settings(**{"output.master_formats": ["wav", "mp3"]})
    scenes = make_scenes(tmp_path, s, 2)
    master = assemble_master(scenes, tmp_path / "out", s, title="T")
    assert master.paths["mp3"].read_text() == "encoded"
    text = log.read_text()
    assert "libmp3lame" in text and "-map_chapters" in text
    assert f"TIMEBASE=1/{RATE}\nSTART={scenes[0].frames}\nEND={scenes[0].frames + scenes[1].frames}" in text


def test_unknown_master_format_is_a_settings_error_at_load():
    with pytest.raises(SettingsError, match="m4a"):
        settings(**{"output.master_formats": ["wav", "m4a"]})


def test_failed_master_rerender_keeps_the_old_master(tmp_path, monkeypatch):
    s = settings()
    scenes = make_scenes(tmp_path, s, 2)
    out = tmp_path / "out"
    master = assemble_master(scenes, out, s, title="T")
    before = master.path.read_bytes()

    from pipeline.files import StreamWriter

    copy_from = StreamWriter.copy_from

    def failing(self, f, size, name=""):  # half the samples are copied; the disk fills before the rename
        copy_from(self, f, size // 2, name)
        raise OSError("disk full")

    monkeypatch.setattr(StreamWriter, "copy_from", failing)
    with pytest.raises(OSError, match="disk full"):
        assemble_master(scenes, out, s, title="T")
    assert master.path.read_bytes() == before
    assert _temp_files(out) == []


def test_master_refuses_a_scene_file_that_changed(tmp_path):
    s = settings()
    scenes = make_scenes(tmp_path, s, 2)
    sf.write(str(scenes[1].path), np.zeros(100), RATE, subtype="PCM_24")
    with pytest.raises(RenderError, match="Mix the scene again"):
        assemble_master(scenes, tmp_path / "out", s, title="T")


def test_scene_result_round_trips_through_json(tmp_path):
    import json

    scene = make_scenes(tmp_path, settings(), 1)[0]
    again = SceneMixResult.from_dict(json.loads(json.dumps(scene.to_dict())))
    assert again == scene


def test_silent_scene_result_is_strict_json(tmp_path):
    import json

    scene = mix_scene([], tmp_path / "empty", settings(), scene_index=4, heading="EXT. VOID")
    text = json.dumps(scene.to_dict(), allow_nan=False)
    assert SceneMixResult.from_dict(json.loads(text)) == scene
    assert scene.cues == () and not sf.read(str(scene.path))[0].any()


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="ffmpeg is not on PATH")
def test_mp3_and_m4b_masters_with_real_ffmpeg(tmp_path):
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4

    s = settings(**{"output.master_formats": ["wav", "m4b", "mp3"]})
    scenes = make_scenes(tmp_path, s, 2)
    master = assemble_master(scenes, tmp_path / "out", s, title="Real Encode")
    assert set(master.paths) == {"wav", "m4b", "mp3"} and master.notes == ()
    chaps = sorted(ID3(str(master.paths["mp3"])).getall("CHAP"), key=lambda f: f.start_time)
    assert [f.start_time for f in chaps] == [0, round(scenes[0].frames / RATE * 1000)]
    assert [str(f.sub_frames["TIT2"]) for f in chaps] == ["SCENE 0", "SCENE 1"]
    m4b = MP4(str(master.paths["m4b"]))
    assert m4b.tags["\xa9nam"] == ["Real Encode"] and m4b.info.length == pytest.approx(master.duration, abs=0.1)
    assert [(round(c.start, 2), c.title) for c in m4b.chapters] == [
        (0.0, "SCENE 0"), (round(scenes[0].frames / RATE, 2), "SCENE 1")]  # fmt: skip


def _master_the_old_way(path, sources, chapters, title):
    """The copied master as it was written before StreamWriter: header, the scenes' data chunks, then
    `add_wav_chapters` appending the chapters and fixing the RIFF size (the goldens were made so)."""
    import struct

    from pipeline.assemble import _wav_data
    from pipeline.deliver import add_wav_chapters

    spans = [(_wav_data(p), p) for p in sources]
    size = sum(n for (_, n), _ in spans)
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 3, 3, 24)
    with open(path, "wb") as out:
        out.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + size) + b"WAVE" + b"fmt " +
                  struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size))
        for (offset, n), p in spans:
            with open(p, "rb") as f:
                f.seek(offset)
                out.write(f.read(n))
    add_wav_chapters(path, chapters, title=title)
    return path.read_bytes()


def test_copied_master_is_byte_for_byte_the_old_one_and_is_never_read_back(tmp_path, monkeypatch):
    import pipeline.keys
    from flows.tasks import file_record, files_intact

    s = settings()
    scenes = make_scenes(tmp_path, s, 3)
    master = assemble_master(scenes, tmp_path / "out", s, title="The Test Script")
    written = master.path.read_bytes()
    old = _master_the_old_way(tmp_path / "old.wav", [sc.path for sc in scenes], master.chapters, "The Test Script")
    assert written == old
    monkeypatch.setattr(pipeline.keys, "sha256_file", lambda p: pytest.fail("the master was read back"))
    assert master.copied == (master.path,)
    record = file_record(master.path, hashed=False)
    assert record[:2] == [len(written), None] and files_intact({str(master.path): record})
    st = master.path.stat()
    os.utime(master.path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    assert not files_intact({str(master.path): record})  # touched since: rebuilt from the scenes, not hashed


def test_copied_master_of_an_odd_data_size_keeps_the_pad_byte(tmp_path):
    from pipeline.assemble import _copy_wav_master
    from pipeline.timeline import Chapter

    sources = []
    for n, frames_ in enumerate((2_401, 1_000)):  # 3 × 3,401 bytes of samples: odd, padded before the chapters
        sources.append(tmp_path / f"s{n}.wav")
        sf.write(str(sources[-1]), noise(frames_, seed=n) * 0.1, RATE, subtype="PCM_24")
    chapters = (Chapter(0, "One", 0, 2_401, RATE), Chapter(1, "Two", 2_401, 3_401, RATE))
    _copy_wav_master(tmp_path / "m.wav", sources, 1, RATE, chapters, "Odd")
    written = (tmp_path / "m.wav").read_bytes()
    assert written == _master_the_old_way(tmp_path / "old.wav", sources, chapters, "Odd")
    assert read_wav_chapters(tmp_path / "m.wav") == [(0, "One"), (2_401, "Two")]


def test_master_after_an_edit_equals_the_master_built_from_scratch(tmp_path):
    """An edit rerun re-mixes one scene and rebuilds the master over the old one: the same bytes as assembling the
    edited scenes into an empty folder."""
    s = settings()
    scenes = make_scenes(tmp_path, s, 3)
    out = tmp_path / "out"
    before = assemble_master(scenes, out, s, title="T").path.read_bytes()
    d = tmp_path / "lines"
    edited = [line(d, "s1a-edit", "ANNA", 16_500, seed=99, amp=0.1), line(d, "s1b", "BEN", 14_000, seed=12)]
    scenes[1] = mix_scene(edited, tmp_path / "scenes" / "scene-1", s, scene_index=1, heading="SCENE 1")
    after = assemble_master(scenes, out, s, title="T").path.read_bytes()
    fresh = assemble_master(scenes, tmp_path / "fresh", s, title="T").path.read_bytes()
    assert after == fresh and after != before
    assert _temp_files(out) == []


@pytest.mark.parametrize("direct", [True, False])
def test_stream_writer_writes_exactly_what_it_is_given(tmp_path, monkeypatch, direct):
    """Pieces crossing chunk boundaries, a copied range, a partial last chunk; O_DIRECT where the file system takes
    it, plain writes where it does not (as on tmpfs)."""
    import io

    import pipeline.files as files

    if not direct:
        monkeypatch.setattr(files, "_open_direct", lambda path: None)
    rng = np.random.default_rng(5)
    pieces = [rng.bytes(n) for n in (7, 4096 * 3 - 7, 5000, 1, 20_000)]
    source = rng.bytes(50_000)
    w = files.StreamWriter(tmp_path / "f", chunk=4096 * 2)
    for p in pieces[:3]:
        w.write(p)
    w.copy_from(io.BufferedReader(io.BytesIO(source)), 30_001)
    for p in pieces[3:]:
        w.write(p)
    w.close()
    expected = b"".join(pieces[:3]) + source[:30_001] + b"".join(pieces[3:])
    assert (tmp_path / "f").read_bytes() == expected


def test_stream_writer_falls_back_to_plain_writes_when_o_direct_is_refused(tmp_path, monkeypatch):
    import errno as errno_mod

    import pipeline.files as files

    write_all = files._write_all
    refused = []

    def refusing(fd, data, offset):
        if fd == w._direct:
            refused.append(offset)
            raise OSError(errno_mod.EINVAL, "Invalid argument")
        write_all(fd, data, offset)

    monkeypatch.setattr(files, "_write_all", refusing)
    w = files.StreamWriter(tmp_path / "f", chunk=4096)
    data = bytes(range(256)) * 50
    w.write(data)
    w.close()
    assert (tmp_path / "f").read_bytes() == data
    assert refused in ([], [0])  # refused once at most (none where the platform has no O_DIRECT), then plain


def test_stream_writer_copy_from_a_short_source_says_so(tmp_path):
    import io

    from pipeline.files import StreamWriter

    w = StreamWriter(tmp_path / "f", chunk=4096)
    with pytest.raises(EOFError, match="ended 10 bytes before"):
        w.copy_from(io.BufferedReader(io.BytesIO(bytes(90))), 100, "scene.wav")
    w.abort()
