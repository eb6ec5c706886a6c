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
The oversampled envelope is computed only where it can matter, in two cheap sieves: interpolation at 4x cannot exceed
`TP_BOUND` (7 dB) × the largest sample within one chunk either side; where that gained bound passes the ceiling, a
tighter one from the chunk's samples and their second differences (`INTERP_A`, `INTERP_Q`: speech, far below Nyquist,
has small ones) is computed, and only chunks still over are oversampled (a few % of speech). Scattered chunks are
handled as rows of one array (the 4x filter as one matrix product), not one Python call each.

Pass 2 (`Leveller.write`): spill × gain × interpolated limiter gain, block by block, to a sink; the result is metered
exactly on the way (loudness, RMS, per-hop K-weighted energies for the master). The true peak is then verified once,
on the written samples, in the chunks where it could be near the ceiling (the same two sieves, on what was written).
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
from .running import running_max, running_mean, running_min

BLOCK_FRAMES = 1 << 16
SPILL_MEMORY = 8 << 20  # bytes of float32 frames a scene mix keeps in memory before it spills to a temp file
LIMIT_WINDOW_S = 0.005  # limiter attack/release/look-ahead
LIMIT_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling (24-bit rounding, interpolation of the gain)
LEVEL_TOLERANCE_DB = 0.01  # the plan stops when the predicted level is this close to the target
MAX_MAKEUP_DB = 24.0  # never raise the gain more than this above the unlimited gain to make up for limiting
_REACH = 10  # frames either side that one 4x interpolated value depends on
_SPAN_CHUNKS = 4096  # at most this many chunks read at once when oversampling or verifying
_READ_GAP = 256  # chunks to oversample or bound this close together are read in one piece


def chunk_frames(rate: int) -> int:
    """Largest chunk ≤ 32 frames (≈ 1.3 ms at 24 kHz) that divides the gating hop, so per-chunk energies add up to
    per-hop energies."""
    hop = ld.hop_frames(rate)
    return max(d for d in range(1, 33) if hop % d == 0)


def _tp_bound() -> float:
    """max over the 4 phases of Σ|h|: |4x interpolated value| ≤ this × max |x| over the filter's reach."""
    return float(max(np.abs(taps).sum() for taps in ld._phase_taps()))


TP_BOUND = _tp_bound()


def _interp_bound() -> tuple[float, float, int, int]:
    """(A, Q, lo, hi): |each 4x interpolated value between frames n and n+1| ≤ A × max(|x[n]|, |x[n+1]|) + Q × the
    largest |second difference| x[k] − 2x[k−1] + x[k−2] for k in n+lo … n+hi. Two summations by parts of each
    phase's taps t: Σ t[m] x[n+m] = S x[n] + W Δx[n] + Σ V[j] Δ²x[n+j], exact for any signal, S − W and W being
    the weights of x[n] and x[n+1]. Speech has its energy far below Nyquist, so its second differences are small
    and this bound is far tighter than TP_BOUND (which holds for any signal, however harsh)."""
    delay = ld._DELAY
    a = q = 0.0
    lo, hi = 0, 0
    for h in ld._phase_taps():
        m = delay - np.arange(len(h))  # y[n] = Σ h[k] x[n + delay − k] = Σ t[m] x[n + m], t[m] = h[delay − m]
        js = np.arange(m.min(), m.max() + 1)
        t = np.zeros(len(js))
        t[m - js[0]] = h
        u = np.array([t[js > j].sum() if j >= 0 else -t[js <= j].sum() for j in js])  # Σ u[j] Δx[n+j]
        v = np.array([u[js > j].sum() if j >= 0 else -u[js <= j].sum() for j in js])  # Σ v[j] Δ²x[n+j]
        s, w = float(t.sum()), float(u.sum())
        a, q = max(a, abs(s - w) + abs(w)), max(q, float(np.abs(v).sum()))
        used = js[v != 0] + 2  # forward Δ²x[i] is the backward difference at k = i + 2
        if used.size:
            lo, hi = min(lo, int(used.min())), max(hi, int(used.max()))
    if (hi - lo) % 2:  # an odd-sized window, centred on a frame
        hi += 1
    return a, q, lo, hi


INTERP_A, INTERP_Q, *_CURVE_REACH = _interp_bound()
_BOUND_SLACK = 1e-9  # relative: float rounding never puts a bound under the value it bounds


_CONTEXT = 10  # frames either side of a chunk that its envelope and its bound depend on
assert _CONTEXT >= ld._DELAY and _CONTEXT >= max(2 - _CURVE_REACH[0], _CURVE_REACH[1])


def _phase_matrix(chunk: int) -> np.ndarray:
    """(chunk + 2 × _CONTEXT, 4 × chunk): a row of a chunk's frames with context times this matrix gives the 4x
    interpolated values of each of its frames, phase by phase (the taps of loudness._phase_taps laid out as a band),
    so many chunks are oversampled in one matrix product."""
    if chunk not in _PHASE_MATRICES:
        delay = ld._DELAY
        m = np.zeros((chunk + 2 * _CONTEXT, ld.OVERSAMPLE * chunk))
        for p, h in enumerate(ld._phase_taps()):
            for n in range(chunk):  # y[n] = Σ_k h[k] x[n + delay − k]
                m[_CONTEXT + n + delay - np.arange(len(h)), p * chunk + n] = h
        _PHASE_MATRICES[chunk] = m
    return _PHASE_MATRICES[chunk]


_PHASE_MATRICES: dict[int, np.ndarray] = {}
_MATMUL_ROWS = 128  # rows per product: small enough that BLAS stays on one thread (its threads cost more than they
# gain on a busy machine, and four times as much in the worst case measured)


def _rows_envelope(rows: list[np.ndarray], chunk: int, valid: np.ndarray) -> np.ndarray:
    """Per row (a chunk's frames with _CONTEXT frames either side; one (R, W) array per channel): the largest |x|
    and 4x interpolated value between each of the chunk's first `valid` frames and the next — the maximum of
    loudness.envelope over the chunk, for many chunks in one matrix product per channel."""
    m = _phase_matrix(chunk)
    env = None
    for x in rows:
        y = np.concatenate([x[i : i + _MATMUL_ROWS] @ m for i in range(0, len(x), _MATMUL_ROWS)])
        np.abs(y, out=y)
        y = y.reshape(len(x), ld.OVERSAMPLE, chunk)
        e = np.maximum(np.abs(x[:, _CONTEXT : _CONTEXT + chunk]), y[:, 0])
        for p in range(1, ld.OVERSAMPLE):
            np.maximum(e, y[:, p], out=e)
        env = e if env is None else np.maximum(env, e, out=env)
    if valid.min() < chunk:  # a last partial chunk: nothing past the signal's end
        env[np.arange(chunk)[None, :] >= valid[:, None]] = 0.0
    return env.max(axis=1)


def _rows_bound(rows: list[np.ndarray], chunk: int, valid: np.ndarray) -> np.ndarray:
    """Per row (as `_rows_envelope`): an upper bound of the chunk's envelope from |x| and second differences
    alone (INTERP_A, INTERP_Q) — a few cheap passes instead of four convolutions; for speech within a fraction of a
    dB of the envelope. (Frames past the signal's end are zeros: counting them can only raise the bound.)"""
    lo, hi = _CONTEXT + _CURVE_REACH[0] - 2, _CONTEXT + chunk - 1 + _CURVE_REACH[1]  # x[k−2] … x[k] for k in reach
    peak = curve = None
    for x in rows:
        p = np.abs(x[:, _CONTEXT : _CONTEXT + chunk + 1]).max(axis=1)  # frames n and n + 1
        w = x[:, lo : hi + 1]
        d = w[:, 2:] - 2.0 * w[:, 1:-1]
        d += w[:, :-2]
        c = np.abs(d, out=d).max(axis=1)
        peak, curve = (p, c) if peak is None else (np.maximum(peak, p), np.maximum(curve, c))
    return (INTERP_A * peak + INTERP_Q * curve) * (1.0 + _BOUND_SLACK)


class _Spill:
    """Where pass 1 keeps the raw signal: float32 frames in memory, moved to a temp file in `folder` once they pass
    `SPILL_MEMORY` bytes (never, without a folder)."""

    def __init__(self, channels: int, folder: Path | None):
        self.channels = channels
        self.frames = 0
        self._folder = folder
        self._parts: list[np.ndarray] = []
        self._ends: np.ndarray | None = None  # frames up to the end of each part
        self._bytes = 0
        self._file = None
        self.path: Path | None = None

    def write(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype="<f4")
        self.frames += len(block)
        if self._file is None and self._folder is not None and self._bytes + data.nbytes > SPILL_MEMORY:
            self._to_file()
        if self._file is not None:
            data.tofile(self._file)
        else:
            self._parts.append(data.copy() if data is block or data.base is not None else data)  # never a caller's
            self._bytes += data.nbytes

    def _to_file(self) -> None:
        Path(self._folder).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".mix-", suffix=".f32", dir=self._folder)
        self._file = os.fdopen(fd, "w+b")
        self.path = Path(name)
        for part in self._parts:
            part.tofile(self._file)
        self._parts, self._bytes = [], 0

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.frames, stop)
        if stop <= start:
            return np.zeros((0, self.channels))
        if self._file is None:  # the parts that hold [start, stop), not one joined copy of them all
            if self._ends is None or len(self._ends) != len(self._parts):
                self._ends = np.cumsum([len(p) for p in self._parts])
            ends = self._ends
            first, last = np.searchsorted(ends, start, "right"), np.searchsorted(ends, stop - 1, "right")
            base = int(ends[first] - len(self._parts[first]))
            if first == last:
                return self._parts[first][start - base : stop - base].astype(np.float64)
            x = np.concatenate(self._parts[first : last + 1])
            return x[start - base : stop - base].astype(np.float64)
        self._file.flush()
        self._file.seek(start * self.channels * 4)
        data = np.fromfile(self._file, dtype="<f4", count=(stop - start) * self.channels)
        return data.reshape(-1, self.channels).astype(np.float64)

    def close(self) -> None:
        self._parts = []
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
        self._done = None
        if self._carry_p.size:  # complete the chunk begun by the last block (no copy of this whole block)
            k = self.size - self._carry_p.size
            head_p, head_e = np.concatenate([self._carry_p, peak[:k]]), np.concatenate([self._carry_e, energy[:k]])
            if len(head_p) < self.size:
                self._carry_p, self._carry_e = head_p, head_e
                return
            self._peak.append(np.array([head_p.max()], np.float32))
            self._energy.append(np.array([head_e.sum()]))
            peak, energy = peak[k:], energy[k:]
        full = len(peak) // self.size * self.size
        if full:
            self._peak.append(peak[:full].reshape(-1, self.size).max(axis=1).astype(np.float32))
            self._energy.append(energy[:full].reshape(-1, self.size).sum(axis=1))
        self._carry_p, self._carry_e = peak[full:].copy(), energy[full:].copy()

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
    upper: np.ndarray | None = None  # per chunk: an upper bound of its envelope (_rows_bound where it was computed)
    bounded_chunks: int = 0  # chunks whose _rows_bound was computed


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
        self._given = False

    def __enter__(self) -> "Leveller":
        return self

    def __exit__(self, *exc) -> None:
        self._spill.close()

    @property
    def frames(self) -> int:
        return self._spill.frames

    # ------------------------------------------------------------ pass 1

    @property
    def takes_energy(self) -> bool:
        """Whether `feed` may be given the blocks' K-weighted energies (LUFS targets measure those)."""
        return self._k is not None

    def feed(self, block: np.ndarray, energy: np.ndarray | None = None) -> None:
        """Pass 1 on the next block. `energy`: its K-weighted power per frame, summed over channels, when the caller
        knows it (a scene mix adds up its lines' K-weighted signals); once given it must come with every later block,
        since the filter's state is not carried through blocks it did not see."""
        block = ld._2d(block)
        if not block.size:
            return
        if energy is None and self._given:
            raise ValueError("feed: the K-weighted energy was given with earlier blocks; give it with every block")
        self._given = self._given or energy is not None
        peak = ld._per_sample_max(block)
        if energy is None:
            energy = self._k.energy(block) if self._k else np.einsum("ij,ij->i", block, block)
        elif self._k is None:
            raise ValueError("feed: energies are K-weighted; an RMS target measures the samples themselves")
        self._chunks.feed(peak, energy)
        self._spill.write(block)

    def feed_silence(self, frames: int) -> None:
        zeros = np.zeros((min(frames, BLOCK_FRAMES), self.channels))
        silent = np.zeros(len(zeros)) if self._given else None
        while frames > 0:
            n = min(frames, BLOCK_FRAMES)
            self.feed(zeros[:n], None if silent is None else silent[:n])
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

    def _tighten(self, upper: np.ndarray, chunks: np.ndarray, bounded: np.ndarray) -> None:
        """Lower upper[c] to the chunk's bound from its samples (`_rows_bound`, read from the spill); marks them."""
        if chunks.size:
            b = _chunk_maxima(self._spill.read, self.frames, self.chunk, chunks, _rows_bound)
            upper[chunks] = np.minimum(upper[chunks], b)
            bounded[chunks] = True

    def _envelope(self, env: np.ndarray, chunks: np.ndarray, exact: np.ndarray) -> None:
        """Set env[c] to the 4x oversampled peak of chunk c's frames (and the points between each frame and the next)
        for the chunks given, read from the spill; marks them exact."""
        if chunks.size:
            env[chunks] = _chunk_maxima(self._spill.read, self.frames, self.chunk, chunks)
            exact[chunks] = True

    def _reach_chunks(self) -> int:
        return -(-_REACH // self.chunk)

    def _near(self, peak: np.ndarray) -> np.ndarray:
        """Per chunk, the largest sample within the 4x filter's reach of any of its frames."""
        return running_max(peak, 2 * self._reach_chunks() + 1, mode="constant", cval=0.0)

    def _limiter(self, env: np.ndarray, gain: float, aim: float) -> np.ndarray | None:
        need = np.minimum(1.0, aim / np.maximum(env.astype(np.float64) * gain, 1e-12))
        if need.min() >= 1.0:
            return None
        w = max(1, math.ceil(LIMIT_WINDOW_S * self.rate / self.chunk))
        smooth = running_mean(running_min(need, 2 * w + 3, mode="nearest"), 2 * w + 1, mode="nearest")
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
        upper = self._near(peak) * TP_BOUND  # per chunk, an upper bound of its envelope: tightened below
        bounded = np.zeros(len(peak), bool)
        env = peak.copy()
        exact = np.zeros(len(peak), bool)
        gain_db = first = self.target.level_db - measured
        tried: list[tuple[float, float]] = []
        limiter, level = None, measured + gain_db
        for _ in range(16):
            gain = ld._gain(gain_db)
            self._tighten(upper, np.flatnonzero((upper * gain > aim) & ~bounded), bounded)
            self._envelope(env, np.flatnonzero((upper * gain > aim) & ~exact), exact)
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
        return Plan(gain_db, limiter, level, int(exact.sum()), len(peak), env, exact, upper, int(bounded.sum()))

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
        audio: the 4x interpolation of gain × limiter × x is gain × g(n) × (interpolated x) — at most the chunk's
        envelope (measured, or its upper bound) — plus gain × (variation of g within the filter's reach) × TP_BOUND
        × the largest nearby sample; and never more than gain × max g × TP_BOUND × the largest nearby sample. Where
        that bound passes the ceiling, the written samples (`reader`) are read: their own bound (`_rows_bound`)
        first, and only the chunks still over the ceiling are oversampled. Returns (upper bound of the true peak in
        dB, chunks oversampled)."""
        plan = self._plan
        peak, _, _ = self._chunks.arrays()
        if not peak.size or plan.envelope is None:
            return -math.inf, 0
        near = self._near(peak).astype(np.float64)
        nodes = plan.limiter if plan.limiter is not None else np.ones(len(peak) + 1)
        g_max, g_var = _reach_range(nodes, self._reach_chunks(), len(peak))
        upper = plan.upper if plan.upper is not None else near * TP_BOUND
        envelope = np.where(plan.exact, plan.envelope, upper)
        bound = gain * np.minimum(np.maximum(nodes[:-1], nodes[1:]) * envelope + g_var * TP_BOUND * near,
                                  g_max * TP_BOUND * near)  # fmt: skip
        ceiling = ld._gain(self.target.ceiling_db)
        todo = np.flatnonzero(bound > ceiling)  # the written samples' own bound, where the plan's is not enough
        bound[todo] = np.minimum(bound[todo], _chunk_maxima(reader, self.frames, self.chunk, todo, _rows_bound))
        todo = np.flatnonzero(bound > ceiling)
        bound[todo] = _chunk_maxima(reader, self.frames, self.chunk, todo)  # measured
        return ld._db(float(bound.max())), len(todo)


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
    hi = running_max(nodes, 2 * r + 2, mode="nearest", origin=-1)[:n]
    lo = running_min(nodes, 2 * r + 2, mode="nearest", origin=-1)[:n]
    return hi, hi - lo


def _chunk_maxima(read: Callable[[int, int], np.ndarray], frames: int, chunk: int, chunks: np.ndarray,
                  rows_fn: Callable[[list[np.ndarray], int, np.ndarray], np.ndarray] = _rows_envelope) -> np.ndarray:
    """`rows_fn` (`_rows_envelope` or `_rows_bound`) of the given sorted chunks. Each chunk becomes one row of its
    frames with _CONTEXT frames either side (zeros outside the signal), so scattered chunks cost no Python loop
    each; the signal is read once per group of nearby chunks (at most `_SPAN_CHUNKS` long), not as a whole."""
    out = np.zeros(len(chunks))
    if not chunks.size:
        return out
    starts = np.flatnonzero(np.diff(chunks) > _READ_GAP) + 1  # a gap this short is cheaper read than skipped
    starts = np.concatenate([[0], starts, [len(chunks)]])
    offsets = np.arange(-_CONTEXT, chunk + _CONTEXT)
    for a, b in zip(starts[:-1], starts[1:]):
        while a < b:  # split groups longer than _SPAN_CHUNKS chunks
            end = a + int(np.searchsorted(chunks[a:b], chunks[a] + _SPAN_CHUNKS))
            cs = chunks[a:end]
            lo, hi = int(cs[0]) * chunk - _CONTEXT, (int(cs[-1]) + 1) * chunk + _CONTEXT
            x = read(max(0, lo), min(frames, hi))
            at = (cs * chunk - lo)[:, None] + offsets[None, :]
            rows = []
            for ch in range(x.shape[1]):
                padded = np.zeros(hi - lo)
                padded[max(0, lo) - lo : max(0, lo) - lo + len(x)] = x[:, ch]
                rows.append(padded[at])
            out[a:end] = rows_fn(rows, chunk, np.minimum(chunk, frames - cs * chunk))
            a = end
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
