"""Scene mixes and the master: rendered lines placed in script order with pauses, dual dialogue overlapped,
loudness-normalised, written atomically; the master streams scene files to disk with chapter markers.

Timing is sample-exact: every line is placed at an integer sample position and cues carry those positions, so the
cue sheet and subtitles (pipeline.deliver) describe exactly what was written.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from . import deliver
from . import loudness as ld
from .audio import read_audio, resample, trim_silence
from .config import Settings
from .effects import apply_effects, effects_gain_db, treatments_for
from .errors import RenderError
from .files import atomic_path, slug
from .timeline import Chapter, MasterResult, SceneMixResult, TimedLine

BLOCK_FRAMES = 1 << 16  # frames per streamed block when building the master
PCM_FORMATS = ("wav", "flac")
COMPRESSED_FORMATS = ("m4b", "mp3")


@dataclass(frozen=True)
class MixLine:
    """One rendered line, in script order. Lines of the two speeches of a dual-dialogue pair share `dual_group`."""

    key: str  # line content key
    character: str
    text: str  # speech text
    audio_path: Path  # WAV/FLAC in the line store (any rate; mono)
    dual_group: int | None = None
    dual_side: int = 0  # 0 = left speech, 1 = right speech
    pause_before: float | None = None  # explicit extra pause (beat) from direction, seconds
    extension: str | None = None  # V.O., O.S. …
    effects: tuple[str, ...] = ()  # treatments: device ("radio", "phone" … from parentheticals), "offscreen" (O.S.)
    kind: str = "dialogue"  # dialogue, or what the narrator reads (heading, action, transition, centered)
    piece: int = 0  # pieces of one long line (pipeline.chunks) follow one another, piece 0 … pieces-1, and are
    pieces: int = 1  # joined with a `pauses.sentence` gap into one placed line with one cue
    cue_text: str | None = None  # the whole line as written when `text` differs (a piece, a respelled word)

    @property
    def is_narration(self) -> bool:
        return self.kind != "dialogue"


# ---------------------------------------------------------------- pause model


@dataclass(frozen=True)
class Placement:
    index: int  # into the lines sequence
    start: int  # sample
    frames: int
    pan: float  # -1 left … 1 right; 0 centre
    dual: bool = False  # one of two overlapped speeches


def _seconds(s: float, rate: int) -> int:
    return int(round(s * rate))


def _blocks(lines: Sequence[MixLine]) -> list[list[int]]:
    """Indices grouped: consecutive lines sharing a dual_group form one block; every other line is its own."""
    blocks: list[list[int]] = []
    for i, line in enumerate(lines):
        prev = lines[blocks[-1][-1]] if blocks else None
        if line.dual_group is not None and prev is not None and prev.dual_group == line.dual_group:
            blocks[-1].append(i)
        else:
            blocks.append([i])
    return blocks


def plan_scene(
    lines: Sequence[MixLine], frames: Sequence[int], settings: Settings, rate: int
) -> tuple[list[Placement], int]:
    """Place lines (of known lengths in frames) on the scene timeline. Returns (placements, total frames).

    Head pause, then per line a gap: `same_speaker` when the speaker repeats, `speaker_change` otherwise,
    `narration.pause` before and after a narration line (`narration.heading_pause` after a spoken heading), plus the
    line's `pause_before`; a dual-dialogue block starts both speeches at one sample (each speech's lines follow one
    another with `same_speaker` gaps) and ends when the longer one ends; then the tail pause.
    """
    p, pan = settings.pauses, settings.output.dual_pan
    out: list[Placement] = []
    end, prev_speaker, prev_kind = 0, None, None
    for block in _blocks(lines):
        sides = [[i for i in block if (lines[i].dual_side != 0) == right] for right in (False, True)] if len(
            block) > 1 else [block]  # fmt: skip
        sides = [s for s in sides if s]
        speakers = {lines[s[0]].character for s in sides}
        kind = lines[block[0]].kind
        narrated = kind != "dialogue" or prev_kind != "dialogue"
        base = p.scene_head if prev_speaker is None else _narration_gap(prev_kind, settings) if narrated else (
            p.same_speaker if prev_speaker in speakers else p.speaker_change)  # fmt: skip
        extra = max(lines[s[0]].pause_before or 0.0 for s in sides)
        start = end + _seconds(base + extra, rate)
        ends: list[tuple[int, str]] = []
        for s in sides:
            side_pan = 0.0 if len(sides) == 1 else (pan if lines[s[0]].dual_side else -pan)
            pos = start
            for n, i in enumerate(s):
                if n:
                    pos += _seconds(p.same_speaker + (lines[i].pause_before or 0.0), rate)
                out.append(Placement(i, pos, frames[i], side_pan, len(sides) > 1))
                pos += frames[i]
            ends.append((pos, lines[s[-1]].character))
        end, prev_speaker = max(ends, key=lambda e: e[0])
        prev_kind = kind
    total = end + _seconds(p.scene_tail, rate) if out else _seconds(p.scene_head + p.scene_tail, rate)
    out.sort(key=lambda pl: (pl.start, pl.index))
    return out, total


def _narration_gap(prev_kind: str | None, settings: Settings) -> float:
    """The gap between two lines when either is narration: `heading_pause` after a spoken heading, else
    `narration.pause`."""
    n = settings.narration
    return n.heading_pause if prev_kind == "heading" else n.pause


# ---------------------------------------------------------------- scene mix


def _load_line(line: MixLine, rate: int) -> np.ndarray:
    path = Path(line.audio_path)
    if not path.is_file():
        raise RenderError(
            f"No audio for line {line.key} ({line.character}: {line.text[:40]!r}) at {path}. "
            "Render the script again to create missing lines."
        )
    try:
        audio = read_audio(path)
    except Exception as e:  # soundfile raises its own error types for corrupt files
        raise RenderError(
            f"Cannot read audio for line {line.key} ({line.character}) at {path}: {e}. "
            "Delete the file and render again."
        ) from None
    return resample(audio, rate).samples.astype(np.float64)


def _pan_gains(pan: float, channels: int, dual: bool) -> np.ndarray:
    """Constant-power pan for stereo; in mono a dual-dialogue line is lowered 3 dB so two overlapped speeches
    together sound as loud as one."""
    if channels == 1:
        return np.array([math.sqrt(0.5) if dual else 1.0])
    theta = (max(-1.0, min(1.0, pan)) + 1.0) * math.pi / 4.0
    return np.array([math.cos(theta), math.sin(theta)])


def _sf_args(fmt: str) -> dict:
    return {"format": fmt.upper(), "subtype": "PCM_24"}


def _scene_path(out_path: Path, fmt: str) -> Path:
    out_path = Path(out_path)
    return out_path if out_path.suffix.lower() == f".{fmt}" else out_path.with_suffix(f".{fmt}")


def prepare_line(line: MixLine, rate: int, settings: Settings) -> np.ndarray:
    """One rendered line ready to place: loaded at `rate`, leading/trailing silence trimmed (the gaps are the pause
    model's, not the engine's), treated (device, off-screen), normalised to `loudness.line_lufs`, then lowered by
    the off-screen gain."""
    p = settings.pauses
    x = _load_line(line, rate)
    if p.trim_silence:
        x = trim_silence(x, rate, p.trim_threshold_db, p.trim_pad)
    x = apply_effects(x, rate, line.effects, treatments_for(settings))
    x = ld.normalise_line(x, rate, settings.loudness.line_lufs)[0]
    gain = effects_gain_db(line.effects, settings)
    return np.asarray(x, dtype=np.float64) * (10.0 ** (gain / 20.0) if gain else 1.0)


def line_groups(lines: Sequence[MixLine]) -> list[list[int]]:
    """Indices grouped per script line: the pieces of a split line (piece 0 … pieces-1, consecutive) form one."""
    groups: list[list[int]] = []
    for i, line in enumerate(lines):
        if line.piece > 0 and groups and lines[groups[-1][-1]].piece == line.piece - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def mix_line(job, audio_path: Path) -> MixLine:
    """The MixLine of a rendered pipeline.render.LineJob whose audio is at `audio_path`."""
    return MixLine(key=job.key, character=job.character, text=job.text, audio_path=Path(audio_path),
                   dual_group=job.dual_group, dual_side=job.dual_side, pause_before=job.pause_before,
                   extension=job.extension, effects=tuple(job.effects), kind=job.kind, piece=job.piece,
                   pieces=job.pieces, cue_text=job.cue_text)


def _joined(parts: list[np.ndarray], gap: np.ndarray) -> np.ndarray:
    """The pieces of one line, one after another with a sentence gap between them."""
    out: list[np.ndarray] = []
    for n, x in enumerate(parts):
        out.extend([gap, x] if n else [x])
    return np.concatenate(out) if out else np.zeros(0)


def _whole(lines: Sequence[MixLine], group: list[int]) -> MixLine:
    """The placed line of a group: its first piece, with the whole line's text."""
    head = lines[group[0]]
    return replace(head, text=head.cue_text if head.cue_text is not None else head.text, cue_text=None, piece=0,
                   pieces=1)


def mix_scene(
    lines: Sequence[MixLine], out_path: Path, settings: Settings, *, scene_index: int, heading: str | None
) -> SceneMixResult:
    """Mix one scene from rendered lines and write it atomically as settings.output.format (the suffix of
    `out_path` is replaced to match). Each line is normalised to loudness.line_lufs, the mix to the preset's
    target with its true-peak ceiling."""
    import soundfile as sf

    rate = settings.output.sample_rate
    channels = 2 if settings.output.stereo else 1
    groups = line_groups(lines)
    gap = np.zeros(_seconds(settings.pauses.sentence, rate))
    audio = [_joined([prepare_line(lines[i], rate, settings) for i in g], gap) for g in groups]
    lines = [_whole(lines, g) for g in groups]
    placements, total = plan_scene(lines, [len(a) for a in audio], settings, rate)
    mix = np.zeros((total, channels))
    for pl in placements:
        gains = _pan_gains(pl.pan, channels, pl.dual)
        mix[pl.start : pl.start + pl.frames] += audio[pl.index][:, None] * gains[None, :]
    mixed, report = ld.normalise(mix, rate, ld.LoudnessTarget.from_settings(settings.loudness))
    path = _scene_path(out_path, settings.output.format)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), mixed[:, 0] if channels == 1 else mixed, rate, **_sf_args(settings.output.format))
    cues = tuple(
        TimedLine(
            lines[pl.index].key, lines[pl.index].character, lines[pl.index].text, pl.start, pl.start + pl.frames,
            rate, scene_index, heading, lines[pl.index].extension, lines[pl.index].dual_group, lines[pl.index].kind,
        )  # fmt: skip
        for pl in placements
    )
    return SceneMixResult(path, total / rate, rate, cues, total, channels, scene_index, heading, report)


# ---------------------------------------------------------------- master


def _master_formats(settings: Settings) -> tuple[list[str], list[str]]:
    """(PCM formats, compressed formats) of the master; settings validated the names at load."""
    wanted = list(dict.fromkeys(settings.output.master_formats))
    pcm = [f for f in wanted if f in PCM_FORMATS] or [settings.output.format]
    return pcm, [f for f in wanted if f in COMPRESSED_FORMATS]


def _stream(path: Path, channels: int):
    """Float64 (frames, channels) blocks of a file; mono is duplicated when the master is stereo."""
    import soundfile as sf

    for block in sf.blocks(str(path), blocksize=BLOCK_FRAMES, dtype="float64", always_2d=True):
        if block.shape[1] != channels:
            block = np.repeat(block.mean(axis=1, keepdims=True), channels, axis=1)
        yield block


def _scene_frames(scenes: Sequence[SceneMixResult]) -> tuple[int, int, list[int]]:
    import soundfile as sf

    rates = {s.sample_rate for s in scenes}
    if len(rates) != 1:
        raise RenderError(f"Scenes have different sample rates {sorted(rates)}; mix them again with one settings file.")
    frames = []
    for s in scenes:
        if not Path(s.path).is_file():
            raise RenderError(f"Scene {s.scene_index} file {s.path} is missing. Render the script again.")
        info = sf.info(str(s.path))
        if info.samplerate != s.sample_rate or (s.frames and info.frames != s.frames):
            raise RenderError(
                f"Scene file {s.path} no longer matches its mix ({info.frames} frames at {info.samplerate} Hz, "
                f"expected {s.n_frames} at {s.sample_rate}). Mix the scene again."
            )
        frames.append(info.frames)
    return rates.pop(), max(s.channels for s in scenes), frames


def assemble_master(
    scenes: Sequence[SceneMixResult], out_dir: Path, settings: Settings, *, title: str
) -> MasterResult:
    """Concatenate scene files into the master (streamed block by block, never all in memory), normalised with
    one gain measured in a first streaming pass, with chapter markers at scene starts. Writes
    out_dir/<slug(title)>.<fmt> for each of settings.output.master_formats; m4b/mp3 only when ffmpeg is found."""
    if not scenes:
        raise RenderError("No scenes to assemble: the script has no dialogue to render.")
    rate, channels, frames = _scene_frames(scenes)
    pcm, compressed = _master_formats(settings)
    target = ld.LoudnessTarget.from_settings(settings.loudness)

    meter = ld.StreamingMeter(rate, channels)
    for s in scenes:
        for block in _stream(s.path, channels):
            meter.feed(block)
    level = meter.level_db(target.mode)
    gain_db = target.level_db - level if math.isfinite(level) else 0.0
    peak_after = meter.true_peak_db() + gain_db
    if peak_after > target.ceiling_db - 0.05:  # the scenes were limited; never push a peak over the ceiling
        gain_db -= peak_after - (target.ceiling_db - 0.05)
    gain = 10.0 ** (gain_db / 20.0)

    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(int)
    total = int(offsets[-1])
    chapters = tuple(
        Chapter(s.scene_index, s.heading or f"Scene {s.scene_index}", int(offsets[i]), int(offsets[i + 1]), rate)
        for i, s in enumerate(scenes)
    )
    cues = tuple(c.shifted(int(offsets[i])) for i, s in enumerate(scenes) for c in s.cues)

    out_dir = Path(out_dir)
    name = slug(title, "master")
    paths: dict[str, Path] = {}
    notes: list[str] = []
    first = out_dir / f"{name}.{pcm[0]}"
    _write_pcm_master(first, [s.path for s in scenes], channels, rate, gain, pcm[0], chapters, total, title, notes)
    paths[pcm[0]] = first
    for fmt in pcm[1:]:  # transcode the first master, still streaming
        path = out_dir / f"{name}.{fmt}"
        _write_pcm_master(path, [first], channels, rate, 1.0, fmt, chapters, total, title, notes)
        paths[fmt] = path
    for fmt in compressed:
        if shutil.which("ffmpeg") is None:
            notes.append(f"{fmt} master skipped: ffmpeg is not on PATH (install ffmpeg to get {fmt} with chapters).")
            continue
        path = out_dir / f"{name}.{fmt}"
        deliver.export_compressed(first, path, chapters, title=title, channels=channels)
        paths[fmt] = path

    lufs = meter.integrated_lufs()
    return MasterResult(
        first, paths, title, total / rate, total, rate, channels, chapters, cues,
        None if lufs is None else lufs + gain_db, meter.true_peak_db() + gain_db, gain_db, tuple(notes),
    )  # fmt: skip


def _write_pcm_master(path, sources, channels, rate, gain, fmt, chapters, total, title, notes) -> None:
    """Stream `sources` × gain into a temp file, add chapter markers, then rename over `path`."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        with sf.SoundFile(str(tmp), "w", rate, channels, **_sf_args(fmt)) as f:
            for source in sources:
                for block in _stream(source, channels):
                    f.write(block * gain if gain != 1.0 else block)
        if fmt == "wav":
            deliver.add_wav_chapters(tmp, chapters, title=title)
        else:
            notes.extend(deliver.add_flac_chapters(tmp, chapters, total_frames=total, title=title))
