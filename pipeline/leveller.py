"""One-pass loudness: measure a signal while it is produced, plan one gain and a look-ahead true-peak limiter from
per-chunk figures, apply both while writing the result, verify the ceiling once on what was written.

Pass 1 (`Leveller.feed`): blocks go to a spill (a float32 temp file for scene mixes, memory for small arrays); per
chunk of `chunk_frames(rate)` frames (32 at 24 kHz, always dividing the 100 ms gating hop) two numbers are kept —
sample peak and K-weighted energy (plain energy for RMS targets) — so the plan costs ~1/32 of the audio in memory.

Plan (`Leveller.plan`): the static gain that brings the measured level to the target; wherever gain × the 4x
oversampled envelope would pass the ceiling, a limiter gain per chunk: `need` = ceiling / (gain × envelope), min-filtered
over ±(w+1) chunks, then box-smoothed over ±w chunks (w ≈ 5 ms). Every smoothed value is an average of minima whose
windows all contain the chunk and its successor, so a gain linearly interpolated between two chunk nodes never exceeds
what either chunk needs: the output is under the ceiling by construction (attack = release = w, look-ahead w).
The loudness the limiter takes away is predicted from the chunk energies and the gain raised to make up for it
(a few cheap iterations over the chunk arrays, no audio touched).
The oversampled envelope is computed only where it can matter: interpolation at 4x cannot exceed `TP_BOUND` × the
largest sample within one chunk either side, so chunks whose gained bound stays under the ceiling are skipped.

Pass 2 (`Leveller.write`): spill × gain × interpolated limiter gain, block by block, to a sink; the result is metered
exactly on the way (loudness, RMS, per-hop K-weighted energies for the master). The true peak is then verified once,
on the written samples, in the chunks where it could be near the ceiling.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import loudness as ld

BLOCK_FRAMES = 1 << 16
LIMIT_WINDOW_S = 0.005  # limiter attack/release/look-ahead
LIMIT_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling (24-bit rounding, interpolation of the gain)
LEVEL_TOLERANCE_DB = 0.01  # the plan stops when the predicted level is this close to the target
MAX_MAKEUP_DB = 24.0  # never raise the gain more than this above the unlimited gain to make up for limiting
_PAD = 16  # frames of context either side of an oversampled run (the 4x filter reaches 10)
_REACH = 10  # frames either side that one 4x interpolated value depends on
_SPAN_CHUNKS = 4096  # chunks read at once when oversampling or verifying


def chunk_frames(rate: int) -> int:
    """Largest chunk ≤ 32 frames (≈ 1.3 ms at 24 kHz) that divides the gating hop, so per-chunk energies add up to
    per-hop energies."""
    hop = ld.hop_frames(rate)
    return max(d for d in range(1, 33) if hop % d == 0)


def _tp_bound() -> float:
    """max over the 4 phases of Σ|h|: |4x interpolated value| ≤ this × max |x| over the filter's reach."""
    from scipy.signal import resample_poly

    impulse = np.zeros(64)
    impulse[32] = 1.0
    h = resample_poly(impulse, ld.OVERSAMPLE, 1)
    return float(max(np.abs(h[p :: ld.OVERSAMPLE]).sum() for p in range(ld.OVERSAMPLE)))


TP_BOUND = _tp_bound()


class _Spill:
    """Where pass 1 keeps the raw signal: float32 frames in memory or in a temp file."""

    def __init__(self, channels: int, folder: Path | None):
        self.channels = channels
        self.frames = 0
        self._parts: list[np.ndarray] | None = None if folder else []
        self._file = None
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".mix-", suffix=".f32", dir=folder)
            self._file = os.fdopen(fd, "w+b")
            self.path = Path(name)

    def write(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype="<f4")
        if self._file is not None:
            data.tofile(self._file)
        else:
            self._parts.append(data)
        self.frames += len(block)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.frames, stop)
        if stop <= start:
            return np.zeros((0, self.channels))
        if self._file is None:
            if len(self._parts) > 1:
                self._parts = [np.concatenate(self._parts)]
            return self._parts[0][start:stop].astype(np.float64)
        self._file.flush()
        self._file.seek(start * self.channels * 4)
        data = np.fromfile(self._file, dtype="<f4", count=(stop - start) * self.channels)
        return data.reshape(-1, self.channels).astype(np.float64)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)


class _Chunks:
    """Per-chunk max of one per-frame series and sum of another, fed in blocks of any length."""

    def __init__(self, size: int):
        self.size = size
        self._peak: list[np.ndarray] = []
        self._energy: list[np.ndarray] = []
        self._carry_p, self._carry_e = np.zeros(0), np.zeros(0)
        self._done: tuple[np.ndarray, np.ndarray, int] | None = None

    def feed(self, peak: np.ndarray, energy: np.ndarray) -> None:
        p, e = np.concatenate([self._carry_p, peak]), np.concatenate([self._carry_e, energy])
        full = len(p) // self.size * self.size
        if full:
            self._peak.append(p[:full].reshape(-1, self.size).max(axis=1).astype(np.float32))
            self._energy.append(e[:full].reshape(-1, self.size).sum(axis=1))
        self._carry_p, self._carry_e = p[full:], e[full:]
        self._done = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(peak per chunk, energy per chunk, frames in the last chunk); the last chunk may be partial."""
        if self._done is None:
            peak, energy = list(self._peak), list(self._energy)
            if self._carry_p.size:
                peak.append(np.array([self._carry_p.max()], np.float32))
                energy.append(np.array([self._carry_e.sum()]))
            p = np.concatenate(peak) if peak else np.zeros(0, np.float32)
            e = np.concatenate(energy) if energy else np.zeros(0)
            full = len(p) - bool(self._carry_p.size)
            self._peak, self._energy = [p[:full]], [e[:full]]  # views of the joined arrays: no second copy
            self._done = (p, e, self._carry_p.size or self.size)
        return self._done


@dataclass(frozen=True)
class Plan:
    gain_db: float  # static gain
    limiter: np.ndarray | None  # limiter gain per chunk node (len = chunks + 1), None when nothing is limited
    predicted_db: float  # the level the plan expects
    oversampled_chunks: int  # chunks whose 4x envelope had to be computed
    chunks: int
    envelope: np.ndarray | None = None  # per chunk: the 4x oversampled peak where `exact`, the sample peak elsewhere
    exact: np.ndarray | None = None


@dataclass(frozen=True)
class Result:
    report: ld.LoudnessReport
    blocks: ld.BlockLoudness
    plan: Plan
    verified_chunks: int  # chunks of the output whose true peak was measured


class Leveller:
    """Normalise a signal fed in blocks to `target` in one pass. Use as a context manager (the spill is removed)."""

    def __init__(self, rate: int, channels: int, target: ld.LoudnessTarget, *, spill_dir: Path | None = None):
        self.rate, self.channels, self.target = rate, channels, target
        self.chunk = chunk_frames(rate)
        self._spill = _Spill(channels, spill_dir)
        self._chunks = _Chunks(self.chunk)
        self._k = ld.KWeighting(rate, channels) if target.mode == "lufs" else None

    def __enter__(self) -> "Leveller":
        return self

    def __exit__(self, *exc) -> None:
        self._spill.close()

    @property
    def frames(self) -> int:
        return self._spill.frames

    # ------------------------------------------------------------ pass 1

    def feed(self, block: np.ndarray) -> None:
        block = ld._2d(block)
        if not block.size:
            return
        peak = ld._per_sample_max(block)
        energy = self._k.energy(block) if self._k else np.einsum("ij,ij->i", block, block)
        self._chunks.feed(peak, energy)
        self._spill.write(block)

    def feed_silence(self, frames: int) -> None:
        zeros = np.zeros((min(frames, BLOCK_FRAMES), self.channels))
        while frames > 0:
            self.feed(zeros[: min(frames, BLOCK_FRAMES)])
            frames -= BLOCK_FRAMES

    # ------------------------------------------------------------ plan

    def _level(self, energy: np.ndarray) -> float:
        if self.target.mode == "lufs":
            per_hop = ld.hop_frames(self.rate) // self.chunk
            pad = (-len(energy)) % per_hop
            hops = np.concatenate([energy, np.zeros(pad)]).reshape(-1, per_hop).sum(axis=1)
            lufs = ld.gated_lufs(hops, self.frames, self.rate)
            if lufs is not None:
                return lufs
            if self._k is not None:  # too short to gate: RMS of the raw signal, as level_db falls back
                return self._rms_fallback()
        total = float(energy.sum())
        return 10.0 * math.log10(total / (self.frames * self.channels)) if total > 0 else -math.inf

    def _rms_fallback(self) -> float:
        x = self._spill.read(0, self.frames)
        return ld.rms_db(x)

    def _envelope(self, env: np.ndarray, chunks: np.ndarray, exact: np.ndarray) -> None:
        """Set env[c] to the 4x oversampled peak of chunk c's frames (and the points between each frame and the next)
        for the chunks given and their near neighbours, read from the spill; marks them exact."""
        if not chunks.size:
            return
        ranges = _runs(chunks)
        maxima = _chunk_envelopes(self._spill.read, self.frames, self.chunk, ranges)
        for (first, last), m in zip(ranges, maxima):
            env[first : last + 1] = m
            exact[first : last + 1] = True

    def _reach_chunks(self) -> int:
        return -(-_REACH // self.chunk)

    def _near(self, peak: np.ndarray) -> np.ndarray:
        """Per chunk, the largest sample within the 4x filter's reach of any of its frames."""
        from scipy.ndimage import maximum_filter1d

        return maximum_filter1d(peak, 2 * self._reach_chunks() + 1, mode="constant", cval=0.0)

    def _limiter(self, env: np.ndarray, gain: float, aim: float) -> np.ndarray | None:
        from scipy.ndimage import minimum_filter1d, uniform_filter1d

        need = np.minimum(1.0, aim / np.maximum(env.astype(np.float64) * gain, 1e-12))
        if need.min() >= 1.0:
            return None
        w = max(1, math.ceil(LIMIT_WINDOW_S * self.rate / self.chunk))
        smooth = uniform_filter1d(minimum_filter1d(need, 2 * w + 3, mode="nearest"), 2 * w + 1, mode="nearest")
        nodes = np.minimum(smooth, need)
        return np.concatenate([nodes, nodes[-1:]])

    def _ramp_power(self, g: np.ndarray, last: int) -> np.ndarray:
        """Mean of gain² over each chunk with the gain ramping linearly from node c to node c+1 (in place, few
        temporaries: these arrays are the plan's whole memory)."""
        L = float(self.chunk)
        m1, m2 = (L - 1) / (2 * L), (L - 1) * (2 * L - 1) / (6 * L * L)
        a = g[:-1]
        d = g[1:] - a
        out = np.square(a)
        out += (2 * m1) * a * d
        d *= d
        d *= m2
        out += d
        if out.size and last != self.chunk:  # a last partial chunk
            k = float(last)
            a0, d0 = g[-2], g[-1] - g[-2]
            out[-1] = a0 * a0 + 2 * a0 * d0 * (k - 1) / (2 * k) + d0 * d0 * (k - 1) * (2 * k - 1) / (6 * k * k)
        return out

    def plan(self) -> Plan:
        peak, energy, last = self._chunks.arrays()
        measured = self._level(energy)
        if not math.isfinite(measured):
            return Plan(0.0, None, measured, 0, len(peak), peak, np.zeros(len(peak), bool))
        aim = ld._gain(self.target.ceiling_db - LIMIT_MARGIN_DB)
        neighbours = self._near(peak)
        env = peak.copy()
        exact = np.zeros(len(peak), bool)
        gain_db = first = self.target.level_db - measured
        tried: list[tuple[float, float]] = []
        limiter, level = None, measured + gain_db
        for _ in range(16):
            gain = ld._gain(gain_db)
            self._envelope(env, np.flatnonzero((neighbours * (gain * TP_BOUND) > aim) & ~exact), exact)
            limiter = self._limiter(env, gain, aim)
            if limiter is None:
                level = measured + gain_db
                break
            level = self._level(energy * self._ramp_power(limiter, last)) + gain_db
            miss = self.target.level_db - level
            if abs(miss) <= LEVEL_TOLERANCE_DB or gain_db >= first + MAX_MAKEUP_DB:
                break
            tried.append((gain_db, level))
            slope = 1.0
            if len(tried) > 1:
                (g0, l0), (g1, l1) = tried[-2], tried[-1]
                slope = min(1.0, max(0.2, (l1 - l0) / (g1 - g0))) if g1 != g0 else 1.0
            gain_db = min(first + MAX_MAKEUP_DB, gain_db + miss / slope)
        return Plan(gain_db, limiter, level, int(exact.sum()), len(peak), env, exact)

    # ------------------------------------------------------------ pass 2

    def write(self, sink: Callable[[np.ndarray], None], plan: Plan | None = None) -> None:
        """Apply `plan` (made now when None) block by block into `sink`, metering the result; then call `finish`."""
        self._plan = plan = plan or self.plan()
        gain = ld._gain(plan.gain_db)
        meter = ld.HopMeter(self.rate, self.channels)
        for start in range(0, self.frames, BLOCK_FRAMES):
            stop = min(self.frames, start + BLOCK_FRAMES)
            y = self._spill.read(start, stop)
            if plan.limiter is not None:
                y *= (_ramp(plan.limiter, start, stop, self.chunk) * gain)[:, None]
            elif gain != 1.0:
                y *= gain
            sink(y)
            meter.feed(y)
        self._meter = meter

    def finish(self, reader: Callable[[int, int], np.ndarray]) -> Result:
        """Verify the true peak once, with `reader(start, stop)` returning the written frames, where it can be near
        the ceiling; returns the result's figures."""
        plan, meter = self._plan, self._meter
        true_peak, verified = self._verify(reader, ld._gain(plan.gain_db))
        sample_peak = ld._db(meter.peak)
        true_peak = max(true_peak, sample_peak)
        hops = meter.hops()
        lufs = meter.integrated_lufs()
        report = ld.LoudnessReport(lufs, meter.rms_db(), true_peak, sample_peak, plan.gain_db,
                                   plan.limiter is not None)  # fmt: skip
        blocks = ld.BlockLoudness(self.rate, self.channels, self.frames, tuple(hops.tolist()), meter.sumsq,
                                  sample_peak, true_peak)  # fmt: skip
        return Result(report, blocks, plan, verified)

    def _verify(self, reader: Callable[[int, int], np.ndarray], gain: float) -> tuple[float, int]:
        """The output's true peak, verified once. Per chunk an upper bound comes from the plan without touching the
        audio: the 4x interpolation of gain × limiter × x is gain × g(n) × (interpolated x) — at most the planned
        envelope — plus gain × (variation of g within the filter's reach) × TP_BOUND × the largest nearby sample;
        where the envelope was not computed, gain × max g × TP_BOUND × the largest nearby sample. Only chunks whose
        bound passes the ceiling are oversampled, from the written samples (`reader`). Returns (upper bound of the
        true peak in dB, chunks oversampled)."""
        plan = self._plan
        peak, _, _ = self._chunks.arrays()
        if not peak.size or plan.envelope is None:
            return -math.inf, 0
        near = self._near(peak).astype(np.float64)
        nodes = plan.limiter if plan.limiter is not None else np.ones(len(peak) + 1)
        g_max, g_var = _reach_range(nodes, self._reach_chunks(), len(peak))
        bound = np.where(plan.exact, gain * np.maximum(nodes[:-1], nodes[1:]) * plan.envelope
                         + gain * g_var * TP_BOUND * near, gain * g_max * TP_BOUND * near)  # fmt: skip
        ceiling = ld._gain(self.target.ceiling_db)
        todo = np.flatnonzero(bound > ceiling)
        ranges = _runs(todo, gap=0)
        maxima = _chunk_envelopes(reader, self.frames, self.chunk, ranges)
        checked = np.zeros(len(peak), bool)
        best = 0.0
        for (first, last), m in zip(ranges, maxima):
            checked[first : last + 1] = True
            best = max(best, float(m.max()) if m.size else 0.0)
        rest = bound[~checked]
        best = max(best, float(rest.max()) if rest.size else 0.0)
        return ld._db(best), int(checked.sum())


def _ramp(nodes: np.ndarray, start: int, stop: int, chunk: int) -> np.ndarray:
    """Per frame in [start, stop): the gain interpolated linearly from node c to node c+1 across chunk c. Chunk-
    aligned spans are built chunk by chunk (no per-frame index division); the same values either way."""
    if start % chunk:
        c, frac = np.divmod(np.arange(start, stop), chunk)
        return nodes[c] + (nodes[c + 1] - nodes[c]) * (frac / chunk)
    first, n = start // chunk, -(-(stop - start) // chunk)
    a = nodes[first : first + n]
    d = nodes[first + 1 : first + n + 1] - a
    return (a[:, None] + d[:, None] * (np.arange(chunk) / chunk)[None, :]).ravel()[: stop - start]


def _reach_range(nodes: np.ndarray, r: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk c < n: (max, max − min) of nodes c-r … c+r+1 (edges repeated), which cover the filter's reach
    around chunk c. Running filters, not reductions over a short window axis (several times faster)."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    hi = maximum_filter1d(nodes, 2 * r + 2, mode="nearest", origin=-1)[:n]
    lo = minimum_filter1d(nodes, 2 * r + 2, mode="nearest", origin=-1)[:n]
    return hi, hi - lo


def _runs(chunks: np.ndarray, gap: int = 4) -> list[tuple[int, int]]:
    """[first, last] chunk ranges covering sorted chunk indices, joining ranges less than `gap` chunks apart."""
    if not chunks.size:
        return []
    breaks = np.flatnonzero(np.diff(chunks) > gap) + 1
    return [(int(r[0]), int(r[-1])) for r in np.split(chunks, breaks)]


def _chunk_envelopes(read: Callable[[int, int], np.ndarray], frames: int, chunk: int,
                     ranges: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per range of chunks, the per-chunk maxima of the 4x oversampled envelope.

    The signal is read once, in spans of `_SPAN_CHUNKS` chunks (plus _PAD frames of context) that hold a range;
    each span's pieces of ranges are oversampled in one call on the pieces joined with their own context: a value
    inside a piece only depends on frames within its context, so neighbouring pieces do not leak into each other."""
    out = [np.zeros(last - first + 1) for first, last in ranges]
    pieces: dict[int, list[tuple[int, int, int]]] = {}  # span -> [(range number, first chunk, last chunk)]
    for n, (first, last) in enumerate(ranges):
        c = first
        while c <= last:
            span = c // _SPAN_CHUNKS
            end = min(last, (span + 1) * _SPAN_CHUNKS - 1)
            pieces.setdefault(span, []).append((n, c, end))
            c = end + 1
    for span, items in sorted(pieces.items()):
        base = max(0, items[0][1] * chunk - _PAD)
        x = read(base, min(frames, (items[-1][2] + 1) * chunk + _PAD))
        segments, spans = [], []
        pos = 0
        for n, first, last in items:
            lo, hi = first * chunk, min(frames, (last + 1) * chunk)
            a, b = max(0, lo - _PAD) - base, min(frames, hi + _PAD) - base
            segments.append(x[a:b])
            spans.append((n, first, pos + lo - base - a, pos + hi - base - a))
            pos += b - a
        env = ld.envelope(np.concatenate(segments))
        for n, first, s, e in spans:
            part = env[s:e]
            k = -(-len(part) // chunk)
            padded = np.zeros(k * chunk)
            padded[: len(part)] = part
            at = first - ranges[n][0]
            out[n][at : at + k] = padded.reshape(k, chunk).max(axis=1)
    return out


def normalise_array(x: np.ndarray, rate: int, target: ld.LoudnessTarget) -> tuple[np.ndarray, Result]:
    """In-memory one-pass normalisation of (N,) or (N, C) samples; returns float64 samples shaped like the input."""
    squeeze = np.asarray(x).ndim == 1
    x2 = ld._2d(x)
    with Leveller(rate, x2.shape[1], target) as lev:
        lev.feed(x2)
        out = np.empty_like(x2)
        pos = [0]

        def sink(block: np.ndarray) -> None:
            out[pos[0] : pos[0] + len(block)] = block
            pos[0] += len(block)

        lev.write(sink)
        result = lev.finish(lambda a, b: out[a:b])
    return (out[:, 0] if squeeze else out), result
