"""Deliverables around the mixed audio: cue sheet JSON, SRT and WebVTT subtitles with speaker labels, an Audacity
label track, and chapter markers inside master files (WAV cue points, FLAC cue sheet + CHAPTERxx comments,
M4B/MP3 chapters through ffmpeg).

Every time comes from an integer sample position (start = sample / rate) and is rounded to the millisecond only
when formatted. Every file is written atomically.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Sequence

from .timeline import Chapter, MasterResult, SceneMixResult, Timeline, TimedLine, timeline_cues
from .cue_sheet import CueSheet, CueSheetLine, CueSheetScene, save_cue_sheet
from .errors import RenderError
from .files import atomic_path, atomic_write_text

SUBTITLE_WIDTH = 42  # characters per subtitle row (a common broadcast limit); wrapping never changes timing


def _scene_spans(source: Timeline) -> list[dict]:
    if isinstance(source, MasterResult):
        return [
            {"scene": c.index, "heading": c.title, "start": _sec(c.start_sample, c.sample_rate),
             "end": _sec(c.end_sample, c.sample_rate), "start_sample": c.start_sample, "end_sample": c.end_sample}
            for c in source.chapters
        ]  # fmt: skip
    scenes = [source] if isinstance(source, SceneMixResult) else [s for s in source if isinstance(s, SceneMixResult)]
    out, offset = [], 0
    for s in scenes:
        out.append({
            "scene": s.scene_index, "heading": s.heading, "file": str(s.path),
            "start": _sec(offset, s.sample_rate), "end": _sec(offset + s.n_frames, s.sample_rate),
            "start_sample": offset, "end_sample": offset + s.n_frames,
        })  # fmt: skip
        offset += s.n_frames
    return out


def _ms(sample: int, rate: int) -> int:
    """Milliseconds, rounded half up, in integer arithmetic (no float drift on long files)."""
    return (sample * 1000 * 2 + rate) // (2 * rate)


def _sec(sample: int, rate: int) -> float:
    return _ms(sample, rate) / 1000.0


def _clock(sample: int, rate: int, sep: str) -> str:
    ms = _ms(sample, rate)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


# ---------------------------------------------------------------- cue sheet and subtitles


def write_cue_sheet(path: str | Path, source: Timeline) -> Path:
    """The cue sheet (pipeline.cue_sheet): every scene and line with master-relative seconds and samples, and each
    line's times relative to its scene file."""
    cues = timeline_cues(source)
    scenes = _scene_spans(source)
    scene_start = {s["scene"]: s["start_sample"] for s in scenes}
    lines = []
    for c in cues:
        base = scene_start.get(c.scene_index, 0)
        lines.append(CueSheetLine(
            scene=c.scene_index, heading=c.heading, character=c.character, text=c.text, key=c.key,
            start=_sec(c.start_sample, c.sample_rate), end=_sec(c.end_sample, c.sample_rate),
            scene_start=_sec(c.start_sample - base, c.sample_rate), scene_end=_sec(c.end_sample - base, c.sample_rate),
            start_sample=c.start_sample, end_sample=c.end_sample, extension=c.extension, kind=c.kind,
        ))
    rate = cues[0].sample_rate if cues else (source.sample_rate if hasattr(source, "sample_rate") else None)
    title = source.title if isinstance(source, MasterResult) else None
    return save_cue_sheet(path, CueSheet(title=title, sample_rate=rate, scenes=[CueSheetScene(**s) for s in scenes],
                                         lines=lines))


def _label(c: TimedLine) -> str:
    return f"{c.character}: {c.text}"


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(" ".join(text.split()), SUBTITLE_WIDTH)) or "…"


def _ordered(source: Timeline, narration: bool = True) -> list[TimedLine]:
    """Cues by start time, without the narrator's when `narration` is false; cues starting together (the two
    speeches of a dual dialogue) keep script order (the timeline lists them so; the sort is stable)."""
    cues = [c for c in timeline_cues(source) if narration or not c.is_narration]
    return sorted(cues, key=lambda c: c.start_sample)


def write_srt(path: str | Path, source: Timeline, *, narration: bool = True) -> Path:
    """SubRip subtitles, one per line, labelled `CHARACTER: text` (the narrator's `NARRATOR: …`, left out when
    `narration` is false); dual dialogue cues overlap as played."""
    blocks = [
        f"{i}\n{_clock(c.start_sample, c.sample_rate, ',')} --> {_clock(c.end_sample, c.sample_rate, ',')}\n"
        f"{_wrap(_label(c))}\n"
        for i, c in enumerate(_ordered(source, narration), 1)
    ]
    return atomic_write_text(path, "\n".join(blocks))


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_vtt(path: str | Path, source: Timeline, *, narration: bool = True) -> Path:
    """WebVTT subtitles with voice spans: `<v MARGARET>text` (`<v NARRATOR>` left out when `narration` is false)."""
    blocks = ["WEBVTT\n"]
    for c in _ordered(source, narration):
        speaker = _vtt_escape(c.character)
        blocks.append(
            f"{_clock(c.start_sample, c.sample_rate, '.')} --> {_clock(c.end_sample, c.sample_rate, '.')}\n"
            f"<v {speaker}>{_vtt_escape(_wrap(c.text))}\n"
        )
    return atomic_write_text(path, "\n".join(blocks))


def write_audacity_labels(path: str | Path, source: Timeline) -> Path:
    """Audacity label track: `start<TAB>end<TAB>CHARACTER: text` per line, seconds with 6 decimals."""
    rows = [
        f"{c.start_sample / c.sample_rate:.6f}\t{c.end_sample / c.sample_rate:.6f}\t{' '.join(_label(c).split())}\n"
        for c in _ordered(source)
    ]
    return atomic_write_text(path, "".join(rows))


def write_deliverables(master: MasterResult, out_dir: str | Path, *, subtitles: bool = True,
                       narration_subtitles: bool = True) -> dict[str, Path]:
    """Cue sheet (always) and, when `subtitles`, SRT, WebVTT and Audacity labels beside the master. The cue sheet
    and labels always hold the narrator's lines (character NARRATOR, kind heading/action/…); the subtitles only
    when `narration_subtitles`."""
    out_dir, stem = Path(out_dir), master.path.stem
    written = {"cues": write_cue_sheet(out_dir / f"{stem}.cues.json", master)}
    if subtitles:
        written["srt"] = write_srt(out_dir / f"{stem}.srt", master, narration=narration_subtitles)
        written["vtt"] = write_vtt(out_dir / f"{stem}.vtt", master, narration=narration_subtitles)
        written["labels"] = write_audacity_labels(out_dir / f"{stem}.labels.txt", master)
    return written


# ---------------------------------------------------------------- WAV cue points


def _chunk(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def add_wav_chapters(path: str | Path, chapters: Sequence[Chapter], *, title: str | None = None) -> None:
    """Append a `cue ` chunk (one cue point per chapter, at its start sample), a LIST/adtl chunk with a `labl` per
    cue, and LIST/INFO INAM (title) to a finished RIFF/WAVE file, then fix the RIFF size. Edits in place: call it on
    the temp file before the atomic rename."""
    path = Path(path)
    with open(path, "r+b") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file; cannot add cue points.")
        f.seek(0, 2)
        if f.tell() % 2:
            f.write(b"\0")
        f.write(wav_chapter_chunks(chapters, title=title))
        size = f.tell() - 8
        if size > 0xFFFFFFFF:
            raise ValueError(f"{path} is larger than 4 GiB; WAV cue points cannot address it. Use FLAC.")
        f.seek(4)
        f.write(struct.pack("<I", size))


def wav_chapter_chunks(chapters: Sequence[Chapter], *, title: str | None = None) -> bytes:
    """The chunks `add_wav_chapters` appends (after the data chunk and its pad byte): `cue `, LIST/adtl and, with a
    title, LIST/INFO. A writer that knows them up front can write a WAV's final bytes in one sequential pass."""
    points = b"".join(
        struct.pack("<II4sIII", n, ch.start_sample, b"data", 0, 0, ch.start_sample)
        for n, ch in enumerate(chapters, 1)
    )
    labels = b"".join(_chunk(b"labl", struct.pack("<I", n) + ch.title.encode("utf-8") + b"\0")
                      for n, ch in enumerate(chapters, 1))  # fmt: skip
    data = _chunk(b"cue ", struct.pack("<I", len(chapters)) + points) + _chunk(b"LIST", b"adtl" + labels)
    if title:
        data += _chunk(b"LIST", b"INFO" + _chunk(b"INAM", title.encode("utf-8") + b"\0"))
    return data


# ---------------------------------------------------------------- FLAC chapters


def _vorbis_time(ch: Chapter) -> str:
    return _clock(ch.start_sample, ch.sample_rate, ".")


def add_flac_chapters(
    path: str | Path, chapters: Sequence[Chapter], *, total_frames: int, title: str | None = None
) -> list[str]:
    """Write a CUESHEET block (one track per chapter, sample-exact) and CHAPTERxxx/CHAPTERxxxNAME Vorbis comments.
    Returns notes about anything left out (a FLAC cue sheet holds at most 254 tracks)."""
    from mutagen.flac import FLAC, CueSheet, CueSheetTrack, CueSheetTrackIndex

    notes = []
    audio = FLAC(str(path))
    if title:
        audio["TITLE"] = title
    for n, ch in enumerate(chapters, 1):
        audio[f"CHAPTER{n:03d}"] = _vorbis_time(ch)
        audio[f"CHAPTER{n:03d}NAME"] = ch.title
    if len(chapters) <= 254:
        sheet = CueSheet(None)
        sheet.media_catalog_number, sheet.lead_in_samples, sheet.compact_disc = b"", 0, False
        for n, ch in enumerate(chapters, 1):
            track = CueSheetTrack(n, ch.start_sample)
            track.indexes.append(CueSheetTrackIndex(1, 0))
            sheet.tracks.append(track)
        sheet.tracks.append(CueSheetTrack(255, total_frames))  # lead-out
        audio.cuesheet = sheet
    else:
        notes.append(f"FLAC cue sheet skipped: {len(chapters)} scenes exceed its 254 tracks; CHAPTER tags written.")
    audio.save()
    return notes


# ---------------------------------------------------------------- M4B / MP3 through ffmpeg


def _ffmeta_escape(text: str) -> str:
    for ch in "\\=;#\n":
        text = text.replace(ch, "\\" + ch)
    return text


def ffmetadata(chapters: Sequence[Chapter], title: str | None) -> str:
    """ffmpeg FFMETADATA1 text with one [CHAPTER] per scene, in sample units (TIMEBASE=1/rate)."""
    parts = [";FFMETADATA1\n"]
    if title:
        parts.append(f"title={_ffmeta_escape(title)}\nalbum={_ffmeta_escape(title)}\n")
    for ch in chapters:
        parts.append(
            f"\n[CHAPTER]\nTIMEBASE=1/{ch.sample_rate}\nSTART={ch.start_sample}\nEND={ch.end_sample}\n"
            f"title={_ffmeta_escape(ch.title)}\n"
        )
    return "".join(parts)


def export_compressed(
    master: Path, out_path: Path, chapters: Sequence[Chapter], *, title: str | None, channels: int = 1
) -> Path:
    """Encode the PCM master to M4B (AAC) or MP3 with chapters and a title via ffmpeg; atomic."""
    fmt = out_path.suffix.lower().lstrip(".")
    codec = {
        "m4b": ["-c:a", "aac", "-b:a", "64k" if channels == 1 else "96k", "-f", "ipod"],
        "mp3": ["-c:a", "libmp3lame", "-b:a", "96k" if channels == 1 else "128k", "-id3v2_version", "3", "-f", "mp3"],
    }[fmt]
    with tempfile.TemporaryDirectory(prefix="readthrough-ffmeta-") as scratch, atomic_path(out_path) as tmp:
        meta = Path(scratch) / "chapters.txt"
        meta.write_text(ffmetadata(chapters, title), encoding="utf-8")
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(master), "-i", str(meta),
               "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1", *codec, str(tmp)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RenderError(
                f"ffmpeg could not write {out_path}: {done.stderr.strip()[-500:]}. Check that your ffmpeg has the "
                f"{codec[1]} encoder, or drop {fmt!r} from output.master_formats."
            )
    return out_path
