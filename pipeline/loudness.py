"""Loudness: measure (pyloudnorm, BS.1770), normalise lines and mixes, limit true peak, check presets.

Arrays are float (N,) mono or (N, C) multichannel. True peak is estimated by 4x oversampling (the BS.1770 method).
The streaming meters measure a file block by block with flat memory, for the master; they reproduce pyloudnorm's
K-weighting and gating so a streamed measurement equals an in-memory one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

OVERSAMPLE = 4
_TP_PAD = 16  # input samples of context either side; resample_poly(4, 1) reaches 10 samples each way
_ABS_GATE = -70.0
_BLOCK_S = 0.4
_HOP_S = 0.1
_LIMIT_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling so re-measurement never lands above it


def _db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def _gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def _2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


# ---------------------------------------------------------------- measurements (in memory)


def measure_lufs(x: np.ndarray, rate: int) -> float | None:
    """Integrated loudness (LUFS) with pyloudnorm; None when it cannot be measured (shorter than one
    400 ms gating block, or silent), so callers fall back to RMS."""
    import pyloudnorm

    x = _2d(x)
    if len(x) < int(_BLOCK_S * rate) + 1 or not np.any(x):
        return None
    value = pyloudnorm.Meter(rate).integrated_loudness(x if x.shape[1] > 1 else x[:, 0])
    return float(value) if math.isfinite(value) else None


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS over the whole signal (all channels), as ACX checks measure it; -inf when silent."""
    x = _2d(x)
    return _db(math.sqrt(float(np.mean(np.square(x))))) if x.size else -math.inf


def sample_peak_db(x: np.ndarray) -> float:
    x = _2d(x)
    return _db(float(np.max(np.abs(x)))) if x.size else -math.inf


def _oversampled_abs(x: np.ndarray) -> np.ndarray:
    """|4x oversampled signal|, max over channels, shape (4N,). Channels go one at a time: 1-D filtering and
    element-wise maxima are several times faster than reductions over a short trailing axis."""
    from scipy.signal import resample_poly

    x = _2d(x)
    out = np.abs(resample_poly(x[:, 0], OVERSAMPLE, 1))
    for ch in range(1, x.shape[1]):
        np.maximum(out, np.abs(resample_poly(x[:, ch], OVERSAMPLE, 1)), out=out)
    return out


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


def limit_true_peak(x: np.ndarray, rate: int, ceiling_db: float, window_s: float = 0.005) -> np.ndarray:
    """Look-ahead peak limiter: a smooth gain curve that keeps the 4x-oversampled peak under `ceiling_db`.

    The needed gain per sample is min-filtered over ±window then box-smoothed over ±window, so the smoothed gain
    is never above what any nearby peak needs (attack and release = `window_s`). Silence stays exactly silent.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    x = _2d(x)
    if not x.size:
        return x
    ceiling = _gain(ceiling_db)
    over = _oversampled_abs(x)
    env = _per_sample_max(x)
    for phase in range(OVERSAMPLE):  # the oversampled peak between each sample and the next
        np.maximum(env, over[phase::OVERSAMPLE], out=env)
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    if need.min() >= 1.0:
        return x
    k = max(1, int(window_s * rate))
    gain = uniform_filter1d(minimum_filter1d(need, 2 * k + 1, mode="nearest"), 2 * k + 1, mode="nearest")
    return x * np.minimum(gain, need)[:, None]


def enforce_ceiling(x: np.ndarray, rate: int, ceiling_db: float) -> tuple[np.ndarray, bool]:
    """Limit until the true peak is under the ceiling (a few passes at most); last resort a static cut."""
    x = _2d(x)
    limited = False
    aim = ceiling_db - _LIMIT_MARGIN_DB
    for _ in range(4):
        if true_peak_db(x) <= ceiling_db:
            return x, limited
        x, limited = limit_true_peak(x, rate, aim), True
    over = true_peak_db(x) - aim
    return (x * _gain(-over) if over > 0 else x), True


def normalise(x: np.ndarray, rate: int, target: LoudnessTarget, *, tolerance_db: float = 0.05) -> tuple[
    np.ndarray, LoudnessReport
]:
    """Gain to the target level, then limit the true peak; repeat while limiting pulled the level down.

    Returns (float64 samples shaped like the input, report of the result). Silent input is returned unchanged.
    """
    squeeze = np.asarray(x).ndim == 1
    y = _2d(x).copy()
    total_gain, limited = 0.0, False
    for _ in range(5):
        level = level_db(y, rate, target.mode)
        if not math.isfinite(level):
            break
        step = target.level_db - level
        if abs(step) <= tolerance_db and true_peak_db(y) <= target.ceiling_db:
            break
        y *= _gain(step)
        total_gain += step
        y, hit = enforce_ceiling(y, rate, target.ceiling_db)
        limited = limited or hit
        if not hit:
            break
    out = y[:, 0] if squeeze else y
    return out, report(out, rate, total_gain, limited)


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


class StreamingMeter:
    """BS.1770 integrated loudness, RMS, sample and true peak of a signal fed in blocks.

    K-weighting coefficients come from pyloudnorm and filter state carries across blocks; per 100 ms hop only one
    number is kept, so memory grows by ~80 bytes per audio second, not with the audio itself.
    """

    def __init__(self, rate: int, channels: int):
        from pyloudnorm.iirfilter import IIRfilter

        self.rate, self.channels = rate, channels
        self._filters = [
            IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"),
            IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"),
        ]
        self._zi = [np.zeros((2, channels)) for _ in self._filters]
        self._hop = max(1, round(rate * _HOP_S))
        self._hops: list[float] = []
        self._acc, self._acc_n = 0.0, 0
        self._sumsq, self._n, self._peak = 0.0, 0, 0.0
        self._tp = TruePeakTracker()

    def feed(self, block: np.ndarray) -> None:
        from scipy.signal import lfilter

        block = _2d(block)
        if not block.size:
            return
        self._sumsq += float(np.sum(np.square(block)))
        self._n += len(block)
        self._peak = max(self._peak, float(np.max(np.abs(block))))
        self._tp.feed(block)
        y = block
        for i, f in enumerate(self._filters):
            y, self._zi[i] = lfilter(f.b, f.a, y, axis=0, zi=self._zi[i])
            y = y * f.passband_gain
        energy = np.sum(np.square(y), axis=1)  # channel gains are 1.0 for L/R/C
        pos = 0
        while pos < len(energy):
            take = min(self._hop - self._acc_n, len(energy) - pos)
            self._acc += float(energy[pos : pos + take].sum())
            self._acc_n += take
            pos += take
            if self._acc_n == self._hop:
                self._hops.append(self._acc)
                self._acc, self._acc_n = 0.0, 0

    @property
    def frames(self) -> int:
        return self._n

    def integrated_lufs(self) -> float | None:
        """Gated integrated loudness as pyloudnorm computes it; None when shorter than one block or silent."""
        hops = np.array(self._hops + ([self._acc] if self._acc_n else []) + [0.0] * 4)
        block = 4 * self._hop
        if self._n < block + 1:
            return None
        n_blocks = int(round((self._n / self.rate - _BLOCK_S) / _HOP_S)) + 1
        z = np.array([hops[j : j + 4].sum() for j in range(n_blocks)]) / block
        with np.errstate(divide="ignore"):
            lk = -0.691 + 10.0 * np.log10(z)
        gated = z[lk >= _ABS_GATE]
        if not gated.size:
            return None
        rel = -0.691 + 10.0 * math.log10(gated.mean()) - 10.0
        final = z[(lk > rel) & (lk > _ABS_GATE)]
        return -0.691 + 10.0 * math.log10(final.mean()) if final.size and final.mean() > 0 else None

    def rms_db(self) -> float:
        return _db(math.sqrt(self._sumsq / (self._n * self.channels))) if self._n else -math.inf

    def sample_peak_db(self) -> float:
        return _db(self._peak)

    def true_peak_db(self) -> float:
        return self._tp.peak_db()

    def level_db(self, mode: Literal["lufs", "rms"]) -> float:
        lufs = self.integrated_lufs() if mode == "lufs" else None
        return lufs if lufs is not None else self.rms_db()
