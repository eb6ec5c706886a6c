"""Scene mixes and the master: rendered lines placed in script order with pauses, dual dialogue overlapped,
loudness-normalised, written atomically; the master streams scene files to disk with chapter markers.

Timing is sample-exact: every line is placed at an integer sample position and cues carry those positions, so the
cue sheet and subtitles (pipeline.deliver) describe exactly what was written.
"""

from __future__ import annotations

import math
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from . import deliver
from . import loudness as ld
from .audio import read_audio, resample, trim_silence
from .config import Settings
from .effects import apply_effects, effects_gain_db, treatments_for
from .errors import RenderError, SettingsError
from .files import StreamWriter, atomic_path, slug
from .leveller import LIMIT_MARGIN_DB, Leveller
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
    out: list[Placement] = []
    end, prev_speaker, prev_kind = 0, None, None
    for block in _blocks(lines):
        placed, end, prev_speaker = place_block(lines, block, frames, settings, rate, end, prev_speaker, prev_kind)
        prev_kind = lines[block[0]].kind
        out.extend(placed)
    out.sort(key=lambda pl: (pl.start, pl.index))
    return out, scene_end(out, end, settings, rate)


def scene_end(placements: Sequence[Placement], end: int, settings: Settings, rate: int) -> int:
    """Total frames of a scene whose last line ends at `end`: plus the tail pause (head + tail when empty)."""
    p = settings.pauses
    return end + _seconds(p.scene_tail, rate) if placements else _seconds(p.scene_head + p.scene_tail, rate)


def place_block(
    lines: Sequence[MixLine], block: Sequence[int], frames, settings: Settings, rate: int, end: int,
    prev_speaker: str | None, prev_kind: str | None = None,
) -> tuple[list[Placement], int, str]:
    """Place one block (a single line, or the lines of one dual-dialogue pair) after a scene timeline that ends at
    `end` with a line of `prev_kind` (dialogue, or what the narrator read); `frames[i]` is line i's length. Returns
    (placements, new end, last speaker). Needs only this block's lengths, so a streamed mix can load one block at a
    time."""
    p, pan = settings.pauses, settings.output.dual_pan
    sides = [[i for i in block if (lines[i].dual_side != 0) == right] for right in (False, True)] if len(
        block) > 1 else [list(block)]  # fmt: skip
    sides = [s for s in sides if s]
    speakers = {lines[s[0]].character for s in sides}
    narrated = lines[block[0]].kind != "dialogue" or (prev_kind or "dialogue") != "dialogue"
    base = p.scene_head if prev_speaker is None else _narration_gap(prev_kind, settings) if narrated else (
        p.same_speaker if prev_speaker in speakers else p.speaker_change)  # fmt: skip
    extra = max(lines[s[0]].pause_before or 0.0 for s in sides)
    start = end + _seconds(base + extra, rate)
    out: list[Placement] = []
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
    end, speaker = max(ends, key=lambda e: e[0])
    return out, end, speaker


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
    return _prepare(line, rate, settings, weighted=False)[0]


def _prepare(line: MixLine, rate: int, settings: Settings, *, weighted: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """`prepare_line`, and with `weighted` the prepared line's K-weighted signal (its frames and one gating hop of
    ringing): computed anyway to measure the line's loudness, it is scaled by the same gains, so the scene's
    loudness is measured from these instead of K-weighting the mix again."""
    p = settings.pauses
    x = _load_line(line, rate)
    if p.trim_silence:
        x = trim_silence(x, rate, p.trim_threshold_db, p.trim_pad)
    x = apply_effects(x, rate, line.effects, treatments_for(settings))
    if weighted:
        x, _, k = ld.normalise_line_weighted(x, rate, settings.loudness.line_lufs)
    else:
        x, k = ld.normalise_line(x, rate, settings.loudness.line_lufs)[0], None
    gain = effects_gain_db(line.effects, settings)
    factor = 10.0 ** (gain / 20.0) if gain else 1.0
    return np.asarray(x, dtype=np.float64) * factor, (k * factor if k is not None and gain else k)


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


def _joined(parts: list[tuple[np.ndarray, np.ndarray | None]], gap: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The pieces of one line, one after another with a sentence gap between them; and their K-weighted signals
    (each with its ringing) added at the same offsets, when given. `parts` is emptied as the pieces are copied in,
    so a long speech is held about once, not twice."""
    if len(parts) == 1:
        return parts.pop()
    with_k = bool(parts) and all(k is not None for _, k in parts)
    total = sum(len(x) for x, _ in parts) + len(gap) * max(0, len(parts) - 1)
    audio = np.zeros(total)
    weighted = np.zeros(total + max(len(k) - len(x) for x, k in parts)) if with_k else None
    pos = 0
    while parts:
        x, k = parts.pop(0)
        audio[pos : pos + len(x)] = x
        if weighted is not None:
            weighted[pos : pos + len(k)] += k
        pos += len(x) + len(gap)
    return audio, weighted


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
    target with its true-peak ceiling, in one pass (pipeline.leveller).

    Streamed: lines are loaded one block (a line, or a dual-dialogue pair) at a time and placed into a buffer that
    is flushed as soon as no later line can reach it, so memory is bounded by the block size and the longest line,
    not by the scene's length. The scene is padded with silence to a whole number of 100 ms gating hops, so the
    master's gating blocks line up with the scenes' (the result carries those blocks' figures)."""
    rate = settings.output.sample_rate
    channels = 2 if settings.output.stereo else 1
    groups = line_groups(lines)
    gap = np.zeros(_seconds(settings.pauses.sentence, rate))
    pieces = list(lines)
    lines = [_whole(pieces, g) for g in groups]  # one placed line (and cue) per script line, its pieces joined
    path = _scene_path(out_path, settings.output.format)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = ld.LoudnessTarget.from_settings(settings.loudness)
    with Leveller(rate, channels, target, spill_dir=path.parent) as lev:
        weighted = lev.takes_energy

        def load(i: int) -> tuple[np.ndarray, np.ndarray | None]:
            return _joined([_prepare(pieces[j], rate, settings, weighted=weighted) for j in groups[i]], gap)

        placements, total = _mix_into(lev, lines, load, settings, rate, channels)
        plan = lev.plan()
        for _ in range(2):  # the ceiling holds by construction; a verified overshoot is trimmed and written again
            with atomic_path(path) as tmp:
                with sf.SoundFile(str(tmp), "w", rate, channels, **_sf_args(settings.output.format)) as f:
                    lev.write(lambda y: f.write(y[:, 0] if channels == 1 else y), plan)
                with _written_reader(tmp) as read:
                    result = lev.finish(read)
                over = result.report.true_peak_db - target.ceiling_db
                if over <= 0:
                    break
                plan = replace(plan, gain_db=plan.gain_db - over - LIMIT_MARGIN_DB)
    cues = tuple(
        TimedLine(
            lines[pl.index].key, lines[pl.index].character, lines[pl.index].text, pl.start, pl.start + pl.frames,
            rate, scene_index, heading, lines[pl.index].extension, lines[pl.index].dual_group, lines[pl.index].kind,
        )  # fmt: skip
        for pl in placements
    )
    return SceneMixResult(path, total / rate, rate, cues, total, channels, scene_index, heading, result.report,
                          result.blocks)  # fmt: skip


def _mix_into(lev: Leveller, lines: Sequence[MixLine], load, settings: Settings, rate: int, channels: int):
    """Place every line (`load(i)`: line i's prepared audio, and its K-weighted signal or None) and feed the mix to
    `lev` in order; returns (placements sorted by start, total frames).

    For a LUFS target the mix's K-weighted signal is built alongside the mix from the lines' own (the filter is
    linear and time-invariant: the K-weighting of a sum of placed, gained lines is the sum of theirs, overlaps and
    dual dialogue included), each with one gating hop of ringing, and `lev` is given its energy per frame instead of
    filtering the mix again."""
    weighted = lev.takes_energy
    tail = ld.hop_frames(rate) if weighted else 0  # ringing carried past each line's end
    placements: list[Placement] = []
    end, speaker, kind = 0, None, None
    pending = np.zeros((0, channels))  # the mix from frame `flushed` on; nothing before it can change any more
    pending_k = np.zeros((0, channels)) if weighted else None  # its K-weighted signal
    flushed = 0
    for block in _blocks(lines):
        loaded = {i: load(i) for i in block}
        placed, end, speaker = place_block(lines, block, {i: len(a) for i, (a, _) in loaded.items()}, settings, rate,
                                           end, speaker, kind)  # fmt: skip
        kind = lines[block[0]].kind
        first = min(pl.start for pl in placed)
        if first < flushed:
            raise SettingsError(
                f"pauses in {settings.pauses!r} place a line {flushed - first} frames before the previous line's "
                "start. Use pauses of 0 seconds or more."
            )
        if first > flushed + len(pending):  # silence up to this block: flush what is pending, then the gap
            _feed(lev, pending, pending_k)
            lev.feed_silence(first - flushed - len(pending))
            pending, flushed = np.zeros((0, channels)), first
            pending_k = np.zeros((0, channels)) if weighted else None
        elif first > flushed:  # this block cannot reach before `first`
            n = first - flushed
            _feed(lev, pending[:n], None if pending_k is None else pending_k[:n])
            pending, flushed = pending[n:], first
            pending_k = None if pending_k is None else pending_k[n:]
        stop = max(pl.start + pl.frames for pl in placed) + tail
        if stop > flushed + len(pending):
            grow = np.zeros((stop - flushed - len(pending), channels))
            pending = np.concatenate([pending, grow])
            pending_k = None if pending_k is None else np.concatenate([pending_k, grow])
        for pl in placed:
            gains = _pan_gains(pl.pan, channels, pl.dual)
            audio, k = loaded.pop(pl.index)  # each channel gets the line × its gain, added with no N×channels copy
            at = pl.start - flushed
            _add_scaled(pending[at : at + pl.frames], audio, gains)
            if pending_k is not None:
                _add_scaled(pending_k[at : at + len(k)], k, gains)
            del audio, k
        placements.extend(placed)
    total = scene_end(placements, end, settings, rate)
    hop = ld.hop_frames(rate)
    total = -(-total // hop) * hop  # whole gating hops: the master's blocks line up with the scenes'
    n = total - flushed  # ringing past the scene's end is not in it
    _feed(lev, pending[:n], None if pending_k is None else pending_k[:n])
    lev.feed_silence(n - min(n, len(pending)))
    placements.sort(key=lambda pl: (pl.start, pl.index))
    return placements, total


def _add_scaled(into: np.ndarray, x: np.ndarray, gains: np.ndarray) -> None:
    """into[:, c] += x × gains[c] for each channel, the same values as adding x[:, None] × gains[None, :]."""
    for c, g in enumerate(gains):
        into[:, c] += x if g == 1.0 else x * g


def _feed(lev: Leveller, block: np.ndarray, weighted: np.ndarray | None) -> None:
    """Feed a block of the mix, with the energy per frame of its K-weighted signal when that is built."""
    if not len(block):
        return
    if weighted is None:
        lev.feed(block)
    else:
        lev.feed(block, np.square(weighted[:, 0]) if weighted.shape[1] == 1 else np.einsum("ij,ij->i", weighted,
                                                                                            weighted))  # fmt: skip


@contextmanager
def _written_reader(path: Path):
    """`read(a, b)`: frames [a, b) of a written scene file as float64, the samples as stored (what soundfile reads).
    A 24-bit PCM WAV is decoded straight from its data chunk (memory-mapped: the check reads scattered pieces of
    it, and each soundfile read costs a seek and a decoder call); anything else is read through soundfile."""
    info = sf.info(str(path))
    if (info.format, info.subtype) != ("WAV", "PCM_24"):
        with sf.SoundFile(str(path)) as f:
            yield _file_reader(f)
        return
    offset, size = _wav_data(path)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(size,)) if size else np.zeros(0, np.uint8)
    try:
        yield lambda a, b: _pcm24(data, info.channels, a, b)
    finally:
        del data


def _pcm24(data: np.ndarray, channels: int, a: int, b: int) -> np.ndarray:
    """Frames [a, b) of little-endian 24-bit PCM bytes as float64 in [-1, 1) (value / 2**23, as libsndfile reads)."""
    width = 3 * channels
    raw = np.asarray(data[a * width : b * width]).reshape(-1, 3)
    v = raw[:, 2].astype(np.int8).astype(np.int32) << 16  # the top byte carries the sign
    v |= raw[:, 1].astype(np.int32) << 8
    v |= raw[:, 0]
    return (v / 8388608.0).reshape(-1, channels)


def _file_reader(f: sf.SoundFile):
    """Read frames [a, b) back from a written file: the samples as stored."""

    def read(a: int, b: int) -> np.ndarray:
        f.seek(a)
        return f.read(b - a, dtype="float64", always_2d=True)

    return read


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


MASTER_TOLERANCE_DB = 0.1  # scenes joined within this of the target are not re-gained: their samples are copied


def assemble_master(
    scenes: Sequence[SceneMixResult], out_dir: Path, settings: Settings, *, title: str
) -> MasterResult:
    """Concatenate scene files into the master with chapter markers at scene starts. Writes
    out_dir/<slug(title)>.<fmt> for each of settings.output.master_formats; m4b/mp3 only when ffmpeg is found.

    The master's loudness comes from the scenes' gating-block figures (`SceneMixResult.blocks`): no audio is read to
    meter it. When the joined scenes are within MASTER_TOLERANCE_DB of the target (they are, each scene having been
    normalised to it) the WAV master is the scenes' PCM samples copied byte for byte; otherwise one gain is applied
    while streaming block by block. Scenes without block figures (older results) are metered in a streaming pass."""
    if not scenes:
        raise RenderError("No scenes to assemble: the script has no dialogue to render.")
    rate, channels, frames = _scene_frames(scenes)
    pcm, compressed = _master_formats(settings)
    target = ld.LoudnessTarget.from_settings(settings.loudness)

    figures = _joined_blocks(scenes, channels) or _meter_scenes(scenes, rate, channels)
    level = figures.level_db(target.mode)
    gain_db = target.level_db - level if math.isfinite(level) else 0.0
    if abs(gain_db) <= MASTER_TOLERANCE_DB:
        gain_db = 0.0
    peak_after = figures.true_peak_db + gain_db
    if gain_db and peak_after > target.ceiling_db - 0.05:  # scenes were limited; never push a peak over the ceiling
        gain_db = min(0.0, gain_db - (peak_after - (target.ceiling_db - 0.05)))
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
    copied = gain == 1.0 and pcm[0] == "wav" and _copyable(scenes, channels)
    if copied:
        _copy_wav_master(first, [s.path for s in scenes], channels, rate, chapters, title)
    else:
        _write_pcm_master(first, [s.path for s in scenes], channels, rate, gain, pcm[0], chapters, total, title,
                          notes)  # fmt: skip
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

    lufs = figures.integrated_lufs()
    return MasterResult(
        first, paths, title, total / rate, total, rate, channels, chapters, cues,
        None if lufs is None else lufs + gain_db, figures.true_peak_db + gain_db, gain_db, tuple(notes),
        (first,) if copied else (),
    )  # fmt: skip


def _joined_blocks(scenes: Sequence[SceneMixResult], channels: int) -> ld.BlockLoudness | None:
    """The scenes' block figures joined in master order; None when any scene lacks them or they do not line up."""
    parts = [s.blocks for s in scenes]
    if any(p is None or p.channels != channels or p.frames != s.n_frames for p, s in zip(parts, scenes)):
        return None
    try:
        return ld.BlockLoudness.concat(parts)
    except ValueError:
        return None


def _meter_scenes(scenes: Sequence[SceneMixResult], rate: int, channels: int) -> ld.BlockLoudness:
    meter = ld.StreamingMeter(rate, channels)
    for s in scenes:
        for block in _stream(s.path, channels):
            meter.feed(block)
    return meter.blocks()


def _copyable(scenes: Sequence[SceneMixResult], channels: int) -> bool:
    """Every scene is a 24-bit PCM WAV with the master's channel count: its data chunk can be copied as is."""
    for s in scenes:
        info = sf.info(str(s.path))
        if (info.format, info.subtype, info.channels) != ("WAV", "PCM_24", channels):
            return False
    return True


def _wav_data(path: Path) -> tuple[int, int]:
    """(offset, size) of the `data` chunk of a RIFF/WAVE file."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise RenderError(f"{path} is not a RIFF/WAVE file. Mix the scene again.")
        pos = 12
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise RenderError(f"{path} has no audio data chunk. Mix the scene again.")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return pos + 8, size
            pos += 8 + size + (size % 2)


def _copy_wav_master(path: Path, sources: Sequence[Path], channels: int, rate: int, chapters, title) -> None:
    """A 24-bit PCM WAV master whose data chunk is the scenes' data chunks copied byte for byte, plus chapters.

    Written front to back in one pass with its final bytes (the chapter chunks are known up front, so the RIFF size
    is too), through pipeline.files.StreamWriter: no page cache filled with the new master (MasterResult.copied:
    not hashed; the render's record of it trusts its size and mtime, and one touched since is rebuilt)."""
    import struct

    spans = [_wav_data(Path(p)) for p in sources]
    data_size = sum(size for _, size in spans)
    block_align = 3 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block_align, block_align, 24)
    tail = (b"\0" if data_size % 2 else b"") + deliver.wav_chapter_chunks(chapters, title=title)
    riff_size = 4 + 8 + len(fmt) + 8 + data_size + len(tail)
    if riff_size > 0xFFFFFFFF:
        raise RenderError(f"The master {path} would be larger than 4 GiB, which WAV cannot hold. Use FLAC "
                          "(output.master_formats = [\"flac\"]).")  # fmt: skip
    head = (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", data_size))  # fmt: skip
    with atomic_path(path) as tmp:
        _copy_data(tmp, head, zip(sources, spans), tail)


def _copy_data(tmp: Path, head: bytes, spans, tail: bytes) -> None:
    """Write `head`, the (offset, size) byte range of each source, then `tail` to `tmp`."""
    writer = StreamWriter(tmp)
    try:
        writer.write(head)
        for source, (offset, size) in spans:
            with open(source, "rb", buffering=0) as f:
                f.seek(offset)
                try:
                    writer.copy_from(f, size, source)
                except EOFError:
                    raise RenderError(f"Scene file {source} is shorter than its header says. Mix it again.") from None
        writer.write(tail)
        writer.close()
    except BaseException:
        writer.abort()
        raise


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
