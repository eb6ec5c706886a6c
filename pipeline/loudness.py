"""Loudness: measure (BS.1770, as pyloudnorm measures it), normalise lines and mixes, limit true peak, check presets.

Arrays are float (N,) mono or (N, C) multichannel. True peak is estimated by 4x oversampling (the BS.1770 method).
The streaming meters measure a file block by block with flat memory, for the master; they reproduce pyloudnorm's
K-weighting and gating so a streamed measurement equals an in-memory one. Nothing here imports scipy.signal or
pyloudnorm (pipeline.iir has the filters; tests check both against them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .iir import k_weighting, sosfilt
from .running import running_mean, running_min

OVERSAMPLE = 4
_TP_PAD = 16  # input samples of context either side; resample_poly(4, 1) reaches 10 samples each way
_ABS_GATE = -70.0
_BLOCK_S = 0.4
_HOP_S = 0.1


def _db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def _gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def _2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


# ---------------------------------------------------------------- measurements (in memory)


def measure_lufs(x: np.ndarray, rate: int) -> float | None:
    """Integrated loudness (LUFS, BS.1770: pyloudnorm's K-weighting and gating, computed here in one filter call);
    None when it cannot be measured (shorter than one 400 ms gating block, or silent), so callers fall back to RMS."""
    x = _2d(x)
    if len(x) < int(_BLOCK_S * rate) + 1 or not np.any(x):
        return None
    return _lufs_from_energy(KWeighting(rate, x.shape[1]).energy(x), len(x), rate)


def _lufs_from_energy(energy: np.ndarray, frames: int, rate: int) -> float | None:
    """`gated_lufs` of a K-weighted energy per frame, summed per gating hop (the last hop padded with zeros)."""
    hop = hop_frames(rate)
    n = -(-len(energy) // hop) * hop
    hops = np.concatenate([energy, np.zeros(n - len(energy))]).reshape(-1, hop).sum(axis=1)
    return gated_lufs(hops, frames, rate)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS over the whole signal (all channels), as ACX checks measure it; -inf when silent."""
    x = _2d(x)
    return _db(math.sqrt(float(np.mean(np.square(x))))) if x.size else -math.inf


def sample_peak_db(x: np.ndarray) -> float:
    x = _2d(x)
    return _db(float(np.max(np.abs(x)))) if x.size else -math.inf


def _oversampled_abs(x: np.ndarray) -> np.ndarray:
    """|4x oversampled signal|, max over channels, shape (4N,): resample_poly(x, 4, 1)'s values with the shared
    filter, computed phase by phase."""
    x = _2d(x)
    out = np.zeros(OVERSAMPLE * len(x))
    for ch in range(x.shape[1]):
        column = np.ascontiguousarray(x[:, ch])
        for p, taps in enumerate(_phase_taps()):
            phase = out[p::OVERSAMPLE]
            np.maximum(phase, np.abs(_interpolated(column, taps)), out=phase)
    return out


# resample_poly(x, 4, 1)'s filter (scipy.signal.firwin(81, 0.25, window=("kaiser", 5.0)), which it designs on every
# call), its symmetric first half bit for bit: a table, so measuring never imports scipy.signal (tests compare it).
_FIR_HALF = (
    "-0x1.a6a4300ba71c9p-62", "-0x1.28611e8298483p-12", "-0x1.13aa9a5e3f476p-11", "-0x1.f282c65a55606p-12",
    "0x1.11adce2da5a3fp-60", "0x1.7f9584c74ee84p-11", "0x1.48e4fa30b5f02p-10", "0x1.16ae13530551dp-10",
    "-0x1.01da64d2040fbp-59", "-0x1.84c350aacf6cfp-10", "-0x1.40d377da7a8dep-9", "-0x1.0700052f53411p-9",
    "0x1.9dbb79621dc70p-59", "0x1.5b81f186879cap-9", "0x1.186a29c763147p-8", "0x1.c2b092330eb1cp-9",
    "-0x1.2a8a8de600f95p-58", "-0x1.20045cf60f943p-8", "-0x1.ca7a5ee634d16p-8", "-0x1.6c0cf475626edp-8",
    "0x1.8dcd0890bcf53p-58", "0x1.c8925199e37c1p-8", "0x1.68dea87191e7ep-7", "0x1.1d0af026ae67bp-7",
    "-0x1.f0a230de2f0b9p-58", "-0x1.63b8d00520e29p-7", "-0x1.19592635fa7bfp-6", "-0x1.bdda8706b1727p-7",
    "0x1.250dd5b98ba71p-57", "0x1.1a82bd3777fc7p-6", "0x1.c4f9bc9efca6ep-6", "0x1.6db460605c314p-6",
    "-0x1.48c390d2693adp-57", "-0x1.ec11ff10a3ce3p-6", "-0x1.9d75948cc65dep-5", "-0x1.644e71625b76fp-5",
    "0x1.5fceed6b34bb8p-57", "0x1.2fa8ebc041f71p-4", "0x1.4456fa47e4ebcp-3", "0x1.cc9ca3edcf7c1p-3",
    "0x1.0029b7ca3d50ap-2",
)  # fmt: skip
_FIR: list[np.ndarray] = []


def _oversampling_fir() -> np.ndarray:
    """The 4x interpolation filter (Kaiser-windowed sinc, 81 taps, cutoff a quarter of Nyquist), as resample_poly
    designs it."""
    if not _FIR:
        half = [float.fromhex(v) for v in _FIR_HALF]
        _FIR.append(np.array(half + half[-2::-1]))
    return _FIR[0]


_DELAY = (len(_oversampling_fir()) - 1) // (2 * OVERSAMPLE)  # the interpolator's delay in input frames: 10


def _phase_taps() -> list[np.ndarray]:
    """The 4x interpolator split into its phases: resample_poly(x, 4, 1)[p::4] == convolve(x, taps[p])[10 : 10 + N]
    (its 81-tap filter, scaled by 4, has its centre at tap 40 = 4 × 10)."""
    h = _oversampling_fir() * OVERSAMPLE
    return [h[p::OVERSAMPLE] for p in range(OVERSAMPLE)]


def _interpolated(column: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """One phase of the 4x interpolation of a 1-D signal: the values between each frame and the next."""
    return np.convolve(column, taps)[_DELAY : _DELAY + len(column)]


def envelope(x: np.ndarray) -> np.ndarray:
    """Per frame: the largest of |x| and the 4x oversampled values between it and the next frame, over channels.
    Phase by phase (one short convolution each, maxima accumulated in place), without a 4N-long intermediate."""
    x = _2d(x)
    env = _per_sample_max(x)
    for ch in range(x.shape[1]):
        column = np.ascontiguousarray(x[:, ch])
        for taps in _phase_taps():
            y = _interpolated(column, taps)
            np.abs(y, out=y)
            np.maximum(env, y, out=env)
    return env


def _per_sample_max(x: np.ndarray) -> np.ndarray:
    """max |x| over channels per frame, without a slow reduction over the short channel axis."""
    out = np.abs(x[:, 0])
    for ch in range(1, x.shape[1]):
        np.maximum(out, np.abs(x[:, ch]), out=out)
    return out


def true_peak_db(x: np.ndarray) -> float:
    """True peak (dBTP) estimated by 4x polyphase oversampling; never below the sample peak."""
    x = _2d(x)
    if not x.size:
        return -math.inf
    return _db(max(float(np.max(_oversampled_abs(x))), float(np.max(np.abs(x)))))


def noise_floor_db(x: np.ndarray, rate: int, window_s: float = 0.5) -> float:
    """RMS of the quietest `window_s` window (ACX asks ≤ -60 dB); -inf for digital silence."""
    x = _2d(x)
    n = max(1, int(window_s * rate))
    if len(x) < n:
        return rms_db(x)
    power = np.mean(np.square(x), axis=1)
    windows = power[: len(power) // n * n].reshape(-1, n).mean(axis=1)
    return 10.0 * math.log10(float(windows.min())) if windows.min() > 0 else -math.inf


# ---------------------------------------------------------------- targets and processing


@dataclass(frozen=True)
class LoudnessTarget:
    """What a mix is normalised to. mode "lufs": integrated loudness; mode "rms": whole-file RMS (ACX)."""

    mode: Literal["lufs", "rms"]
    level_db: float
    ceiling_db: float  # true-peak ceiling (dBTP); samples never exceed it either

    @classmethod
    def from_settings(cls, loudness) -> "LoudnessTarget":
        """broadcast/custom: target_lufs and true_peak_db; acx: the middle of acx_rms_range and acx_peak_db."""
        if loudness.preset == "acx":
            lo, hi = loudness.acx_rms_range
            return cls("rms", (lo + hi) / 2.0, loudness.acx_peak_db)
        return cls("lufs", loudness.target_lufs, loudness.true_peak_db)


@dataclass(frozen=True)
class LoudnessReport:
    lufs: float | None  # None when too short/silent to measure
    rms_db: float
    true_peak_db: float
    sample_peak_db: float
    gain_db: float = 0.0  # static gain applied (before any limiting)
    limited: bool = False


def report(x: np.ndarray, rate: int, gain_db: float = 0.0, limited: bool = False) -> LoudnessReport:
    return LoudnessReport(measure_lufs(x, rate), rms_db(x), true_peak_db(x), sample_peak_db(x), gain_db, limited)


def level_db(x: np.ndarray, rate: int, mode: Literal["lufs", "rms"] = "lufs") -> float:
    """The level a target is compared with: LUFS (RMS when unmeasurable) or RMS; -inf when silent."""
    if mode == "lufs":
        lufs = measure_lufs(x, rate)
        if lufs is not None:
            return lufs
    return rms_db(x)


def normalise_line(x: np.ndarray, rate: int, line_lufs: float) -> tuple[np.ndarray, float]:
    """Scale one rendered line to `line_lufs` (RMS fallback for lines too short to gate); silent lines stay as
    they are. Returns (scaled float64 samples, gain in dB). No limiting here: the scene limiter handles peaks."""
    level = level_db(x, rate)
    if not math.isfinite(level):
        return np.asarray(x, dtype=np.float64), 0.0
    gain = line_lufs - level
    return np.asarray(x, dtype=np.float64) * _gain(gain), gain


def normalise_line_weighted(x: np.ndarray, rate: int, line_lufs: float) -> tuple[np.ndarray, float, np.ndarray]:
    """`normalise_line` of a mono line (the same gain, the same samples) that also returns the scaled line's
    K-weighted signal from rest, for its frames and one gating hop of the filter's ringing after them (past that
    the ringing is below 1e-11 of the input): measured once here for the line's gain, it is what a scene mix adds up
    (× pan gains) instead of K-weighting the mix again — the filter is linear and time-invariant."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = KWeighting(rate, 1).filtered(np.concatenate([x, np.zeros(hop_frames(rate))]))
    level = _level_from_weighted(x, k[:n], rate)
    if not math.isfinite(level):
        return x, 0.0, k
    gain = line_lufs - level
    g = _gain(gain)
    k *= g
    return x * g, gain, k


def _level_from_weighted(x: np.ndarray, k: np.ndarray, rate: int) -> float:
    """level_db(x, rate) of mono `x` whose K-weighted signal is `k`: the same figures measure_lufs computes."""
    if len(x) < int(_BLOCK_S * rate) + 1 or not np.any(x):
        return rms_db(x)
    lufs = _lufs_from_energy(np.square(k), len(x), rate)
    return lufs if lufs is not None else rms_db(x)


def limit_true_peak(x: np.ndarray, rate: int, ceiling_db: float, window_s: float = 0.005) -> np.ndarray:
    """Look-ahead peak limiter: a smooth gain curve that keeps the 4x-oversampled peak under `ceiling_db`.

    The needed gain per sample is min-filtered over ±window then box-smoothed over ±window, so the smoothed gain
    is never above what any nearby peak needs (attack and release = `window_s`). Silence stays exactly silent.
    """
    x = _2d(x)
    if not x.size:
        return x
    ceiling = _gain(ceiling_db)
    env = envelope(x)
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    if need.min() >= 1.0:
        return x
    k = max(1, int(window_s * rate))
    gain = running_mean(running_min(need, 2 * k + 1, mode="nearest"), 2 * k + 1, mode="nearest")
    return x * np.minimum(gain, need)[:, None]


def normalise(x: np.ndarray, rate: int, target: LoudnessTarget) -> tuple[np.ndarray, LoudnessReport]:
    """Gain to the target level and look-ahead true-peak limiting in one pass (pipeline.leveller), the gain raised
    to make up for what limiting takes away. Returns (float64 samples shaped like the input, report of the result).
    Silent input is returned unchanged."""
    from .leveller import normalise_array

    y, result = normalise_array(x, rate, target)
    return y, result.report


# ---------------------------------------------------------------- ACX check


@dataclass(frozen=True)
class AcxReport:
    rms_db: float
    peak_db: float
    noise_floor_db: float
    ok: bool
    problems: tuple[str, ...]


def check_acx(x: np.ndarray, rate: int, loudness) -> AcxReport:
    """ACX ranges from settings.loudness: RMS within acx_rms_range, peak ≤ acx_peak_db, noise floor ≤ -60 dB."""
    lo, hi = loudness.acx_rms_range
    rms, peak, floor = rms_db(x), true_peak_db(x), noise_floor_db(x, rate)
    problems = []
    if not lo <= rms <= hi:
        problems.append(f"RMS {rms:.1f} dB is outside {lo:g}…{hi:g} dB")
    if peak > loudness.acx_peak_db:
        problems.append(f"peak {peak:.1f} dB is above {loudness.acx_peak_db:g} dB")
    if floor > -60.0:
        problems.append(f"noise floor {floor:.1f} dB is above -60 dB")
    return AcxReport(rms, peak, floor, not problems, tuple(problems))


# ---------------------------------------------------------------- streaming meters (flat memory)


class TruePeakTracker:
    """4x-oversampled peak of a signal fed in blocks; equals true_peak_db of the whole signal."""

    def __init__(self):
        self._hist: np.ndarray | None = None  # left context (≤ pad samples) + samples not yet evaluated
        self._pending = 0  # trailing samples of _hist not yet evaluated
        self._peak = 0.0

    def _scan(self, x: np.ndarray, lo: int, hi: int | None) -> None:
        y = _oversampled_abs(x)[lo * OVERSAMPLE : None if hi is None else hi * OVERSAMPLE]
        if y.size:
            self._peak = max(self._peak, float(y.max()))

    def feed(self, block: np.ndarray) -> None:
        block = _2d(block)
        if not block.size:
            return
        self._peak = max(self._peak, float(np.max(np.abs(block))))
        x = block if self._hist is None else np.concatenate([self._hist, block])
        self._pending += len(block)
        start, end = len(x) - self._pending, len(x) - _TP_PAD
        if end > start:  # evaluate all but the last pad samples, which still lack right context
            self._scan(x, start, end)
            self._pending = _TP_PAD
        self._hist = x[-(self._pending + _TP_PAD) :]

    def peak_db(self) -> float:
        if self._hist is not None and self._pending:
            self._scan(self._hist, len(self._hist) - self._pending, None)
            self._pending = 0
        return _db(self._peak)


class KWeighting:
    """BS.1770 K-weighting (pyloudnorm's coefficients) of a signal fed in blocks; filter state carries across
    blocks. `energy(block)` is the K-weighted power per frame, summed over channels (L/R/C weights are 1.0)."""

    def __init__(self, rate: int, channels: int):
        self._sos = _k_sos(rate)
        self._zi = np.zeros((len(self._sos), 2, channels))

    def filtered(self, block: np.ndarray) -> np.ndarray:
        """The K-weighted signal of a mono block (1-D in, 1-D out)."""
        y, zi = sosfilt(self._sos, block, zi=self._zi[:, :, 0])
        self._zi = zi[:, :, None]
        return y

    def energy(self, block: np.ndarray) -> np.ndarray:
        block = _2d(block)
        if block.shape[1] == 1:  # mono: the same figures without a sum over a one-column axis
            y, zi = sosfilt(self._sos, block[:, 0], zi=self._zi[:, :, 0])
            self._zi = zi[:, :, None]
            return np.square(y, out=y)
        y, self._zi = sosfilt(self._sos, block, zi=self._zi)
        return np.sum(np.square(y), axis=1)


_K_CACHE: dict[int, np.ndarray] = {}


def _k_sos(rate: int) -> np.ndarray:
    """The two K-weighting sections for `rate` (pipeline.iir.k_weighting: pyloudnorm's coefficients), made once."""
    if rate not in _K_CACHE:
        _K_CACHE[rate] = k_weighting(rate)
    return _K_CACHE[rate]


def hop_frames(rate: int) -> int:
    """Frames per 100 ms gating hop; a BS.1770 gating block is 4 consecutive hops (400 ms, 75 % overlap)."""
    return max(1, round(rate * _HOP_S))


def gated_lufs(hops: np.ndarray, frames: int, rate: int) -> float | None:
    """BS.1770 integrated loudness from K-weighted energy sums per 100 ms hop, gated as pyloudnorm gates (absolute
    -70 LUFS, then relative -10 LU); None when shorter than one block or silent."""
    hop = hop_frames(rate)
    if frames < 4 * hop + 1:
        return None
    n_blocks = int(round((frames / rate - _BLOCK_S) / _HOP_S)) + 1
    padded = np.concatenate([np.asarray(hops, dtype=np.float64), np.zeros(4)])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    z = (csum[4 : n_blocks + 4] - csum[:n_blocks]) / (4 * hop)
    z = np.maximum(z, 0.0)  # cumsum round-off must not make silence negative
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10.0 * np.log10(z)
    gated = z[lk >= _ABS_GATE]
    if not gated.size:
        return None
    rel = -0.691 + 10.0 * math.log10(gated.mean()) - 10.0
    final = z[(lk > rel) & (lk > _ABS_GATE)]
    return -0.691 + 10.0 * math.log10(final.mean()) if final.size and final.mean() > 0 else None


@dataclass(frozen=True)
class BlockLoudness:
    """What the master needs of a scene to meter a concatenation of scenes without reading their audio: the
    K-weighted energy of every 100 ms hop (a gating block is 4 consecutive hops), frames, sum of squares and peaks.

    Scenes are mixed to a whole number of hops, so the master's gating grid is the concatenation of the scenes'
    grids: a block across a scene boundary is the sum of hops from both scenes, exactly what metering the master
    file finds (the K-weighting state at a boundary is the decay of the scene tail's silence: nothing).
    """

    sample_rate: int
    channels: int
    frames: int
    hops: tuple[float, ...]
    sumsq: float
    sample_peak_db: float
    true_peak_db: float

    def __post_init__(self):  # 9 significant digits, as stored: a record read back equals the one written
        object.__setattr__(self, "hops", tuple(float(f"{h:.9g}") for h in self.hops))

    @property
    def hop(self) -> int:
        return hop_frames(self.sample_rate)

    def integrated_lufs(self) -> float | None:
        return gated_lufs(np.asarray(self.hops), self.frames, self.sample_rate)

    def rms_db(self) -> float:
        return _db(math.sqrt(self.sumsq / (self.frames * self.channels))) if self.frames and self.sumsq > 0 else (
            -math.inf)  # fmt: skip

    def level_db(self, mode: Literal["lufs", "rms"]) -> float:
        lufs = self.integrated_lufs() if mode == "lufs" else None
        return lufs if lufs is not None else self.rms_db()

    @classmethod
    def concat(cls, parts: "list[BlockLoudness]") -> "BlockLoudness":
        """The figures of `parts` played one after another. Raises ValueError when they cannot be joined exactly
        (different rates or channel counts, or a part before the last that is not a whole number of hops)."""
        if not parts:
            raise ValueError("nothing to join")
        first = parts[0]
        for p in parts:
            if (p.sample_rate, p.channels) != (first.sample_rate, first.channels):
                raise ValueError("parts have different sample rates or channel counts")
        for p in parts[:-1]:
            if p.frames % p.hop or len(p.hops) != p.frames // p.hop:
                raise ValueError("a part is not a whole number of 100 ms hops")
        return cls(first.sample_rate, first.channels, sum(p.frames for p in parts),
                   tuple(h for p in parts for h in p.hops), sum(p.sumsq for p in parts),
                   max(p.sample_peak_db for p in parts), max(p.true_peak_db for p in parts))  # fmt: skip

    def to_dict(self) -> dict:
        fin = lambda v: v if math.isfinite(v) else None  # noqa: E731  strict JSON: silence is null
        return {"sample_rate": self.sample_rate, "channels": self.channels, "frames": self.frames,
                "hops": list(self.hops), "sumsq": self.sumsq,
                "sample_peak_db": fin(self.sample_peak_db), "true_peak_db": fin(self.true_peak_db)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "BlockLoudness":
        neg = lambda v: -math.inf if v is None else float(v)  # noqa: E731
        return cls(int(d["sample_rate"]), int(d["channels"]), int(d["frames"]), tuple(float(h) for h in d["hops"]),
                   float(d["sumsq"]), neg(d["sample_peak_db"]), neg(d["true_peak_db"]))  # fmt: skip


class HopMeter:
    """K-weighted energy per 100 ms hop, sum of squares and sample peak of a signal fed in blocks (no true peak)."""

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = rate, channels
        self._k = KWeighting(rate, channels)
        self._hop = hop_frames(rate)
        self._hops: list[np.ndarray] = []
        self._carry = np.zeros(0)
        self.sumsq, self.frames, self.peak = 0.0, 0, 0.0

    def feed(self, block: np.ndarray) -> None:
        block = _2d(block)
        if not block.size:
            return
        self.sumsq += float(np.einsum("ij,ij->", block, block))
        self.frames += len(block)
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        e = np.concatenate([self._carry, self._k.energy(block)])
        full = len(e) // self._hop * self._hop
        if full:
            self._hops.append(e[:full].reshape(-1, self._hop).sum(axis=1))
        self._carry = e[full:]

    def hops(self) -> np.ndarray:
        """Energy sums per hop; a last partial hop is summed as far as it goes."""
        tail = [np.array([self._carry.sum()])] if self._carry.size else []
        return np.concatenate(self._hops + tail) if self._hops or tail else np.zeros(0)

    def integrated_lufs(self) -> float | None:
        return gated_lufs(self.hops(), self.frames, self.rate)

    def rms_db(self) -> float:
        return _db(math.sqrt(self.sumsq / (self.frames * self.channels))) if self.frames else -math.inf


class StreamingMeter:
    """BS.1770 integrated loudness, RMS, sample and true peak of a signal fed in blocks.

    K-weighting coefficients are pyloudnorm's and filter state carries across blocks; per 100 ms hop only one
    number is kept, so memory grows by ~80 bytes per audio second, not with the audio itself.
    """

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = rate, channels
        self._hops = HopMeter(rate, channels)
        self._tp = TruePeakTracker()

    def feed(self, block: np.ndarray) -> None:
        block = _2d(block)
        if not block.size:
            return
        self._hops.feed(block)
        self._tp.feed(block)

    @property
    def frames(self) -> int:
        return self._hops.frames

    def integrated_lufs(self) -> float | None:
        """Gated integrated loudness as pyloudnorm computes it; None when shorter than one block or silent."""
        return self._hops.integrated_lufs()

    def rms_db(self) -> float:
        return self._hops.rms_db()

    def sample_peak_db(self) -> float:
        return _db(self._hops.peak)

    def true_peak_db(self) -> float:
        return self._tp.peak_db()

    def level_db(self, mode: Literal["lufs", "rms"]) -> float:
        lufs = self.integrated_lufs() if mode == "lufs" else None
        return lufs if lufs is not None else self.rms_db()

    def blocks(self) -> BlockLoudness:
        return BlockLoudness(self.rate, self.channels, self.frames, tuple(self._hops.hops().tolist()),
                             self._hops.sumsq, self.sample_peak_db(), self.true_peak_db())  # fmt: skip
