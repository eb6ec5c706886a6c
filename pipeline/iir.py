"""IIR filters as second-order sections, without importing `scipy.signal`: Butterworth band limits, BS.1770
K-weighting, and the biquad cascade that runs them.

`scipy.signal` costs a render about 50 MiB of memory and 1–3 s of import for these two small filters. The cascade
runs in scipy's compiled sosfilt kernel, loaded on its own from the installed scipy: the code scipy.signal.sosfilt
runs, so the output is the same bit for bit. Where that kernel cannot be loaded, scipy.signal.sosfilt is used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray], None]  # (sos, x (S, N), zi (S, sections, 2)), in place

_KERNEL: list[Kernel] = []


def kernel() -> Kernel:
    """The biquad cascade kernel: scipy's compiled `_sosfilt`, or a stand-in over scipy.signal.sosfilt."""
    if not _KERNEL:
        _KERNEL.append(_compiled_kernel() or _scipy_signal_kernel)
    return _KERNEL[0]


def _compiled_kernel() -> Kernel | None:
    """scipy.signal._sosfilt._sosfilt, loaded from its file without running scipy.signal's package import."""
    loaded = sys.modules.get("scipy.signal._sosfilt")
    if loaded is not None:
        return getattr(loaded, "_sosfilt", None)
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "signal"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_sosfilt{suffix}"
        if not path.is_file():
            continue
        try:
            module_spec = importlib.util.spec_from_file_location("scipy.signal._sosfilt", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        except (ImportError, OSError):
            return None
        return getattr(module, "_sosfilt", None)
    return None


def _scipy_signal_kernel(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    from scipy.signal import sosfilt

    for row in range(len(x)):
        x[row], zi[row] = sosfilt(sos, x[row], zi=zi[row])


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`x` (N,) or (N, C) filtered along its first axis by the cascade `sos` (sections, 6), starting from state `zi`
    ((sections, 2) or (sections, 2, C); zeros when None). Returns (float64 output shaped like `x`, final state shaped
    like `zi`): scipy.signal.sosfilt(sos, x, axis=0, zi=zi), computed by the same kernel."""
    x = np.asarray(x, dtype=np.float64)
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    sections = len(sos)
    rows = np.array((x[:, None] if x.ndim == 1 else x).T, dtype=np.float64, order="C")  # (C, N), filtered in place
    if zi is None:
        state = np.zeros((len(rows), sections, 2))
    else:
        state = np.array(np.moveaxis(np.reshape(zi, (sections, 2, len(rows))), 2, 0), dtype=np.float64, order="C")
    kernel()(sos, rows, state)
    final = np.moveaxis(state, 0, 2)
    if x.ndim == 1:
        return rows[0], final[:, :, 0]
    return rows.T, final


# ---------------------------------------------------------------- designs


def butterworth(order: int, rate: float, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Digital Butterworth filter of even `order` as second-order sections (sections, 6): band-pass with both edges,
    high-pass with `low` only, low-pass with `high` only (Hz). The design scipy.signal.butter makes (analog prototype,
    pre-warped edges, bilinear transform), with the same responses; sections run from the poles farthest from the unit
    circle to the nearest, the overall gain in the first."""
    if order < 2 or order % 2:
        raise ValueError(f"Butterworth order must be even and at least 2, not {order}")
    if low is None and high is None:
        raise ValueError("a Butterworth filter needs a low edge, a high edge, or both")
    if not all(0 < edge < rate / 2 for edge in (low, high) if edge is not None) or (low and high and low >= high):
        raise ValueError(f"Butterworth edges must lie between 0 and {rate / 2:g} Hz, low below high; got {low}, {high}")
    poles = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))  # analog prototype, cutoff 1 rad/s
    fs = 2.0  # the bilinear transform at fs = 2 of edges pre-warped from the normalised frequency, as scipy does

    def warp(hz: float) -> float:
        return 2 * fs * math.tan(math.pi * (2 * hz / rate) / fs)

    if low is not None and high is not None:
        lo, hi = warp(low), warp(high)
        bw, w0 = hi - lo, math.sqrt(lo * hi)
        half = poles * bw / 2
        root = np.sqrt(half**2 - w0**2)
        poles, zeros, gain = np.concatenate([half + root, half - root]), (1.0, -1.0), bw**order
        analog_zeros = np.zeros(order)  # the band-pass zeros at s = 0 (their partners are at infinity)
    elif low is not None:
        w = warp(low)
        gain = float(np.real(1.0 / np.prod(-poles)))
        poles, zeros, analog_zeros = w / poles, (1.0, 1.0), np.zeros(order)
    else:
        w = warp(high)
        poles, zeros, gain, analog_zeros = poles * w, (-1.0, -1.0), w**order, np.zeros(0)
    fs2 = 2 * fs
    gain *= float(np.real(np.prod(fs2 - analog_zeros) / np.prod(fs2 - poles)))
    digital = (fs2 + poles) / (fs2 - poles)
    return _sections(digital, zeros, gain)


def _sections(poles: np.ndarray, zeros: tuple[float, float], gain: float) -> np.ndarray:
    """One section per conjugate pole pair (the pair's upper pole given), each with the two real `zeros`."""
    upper = poles[poles.imag > 0]
    if 2 * len(upper) != len(poles):
        raise ValueError("Butterworth poles of an even order come in conjugate pairs")
    upper = upper[np.argsort(np.abs(upper), kind="stable")]
    b = np.array([1.0, -(zeros[0] + zeros[1]), zeros[0] * zeros[1]])
    sos = np.array([np.concatenate([b, [1.0, -2.0 * p.real, abs(p) ** 2]]) for p in upper])
    sos[0, :3] *= gain
    return sos


def k_weighting(rate: float) -> np.ndarray:
    """BS.1770 K-weighting as two sections (high shelf +4 dB at 1500 Hz, Q 1/√2; high pass at 38 Hz, Q 0.5), with
    pyloudnorm's coefficients (RBJ cookbook formulas) computed the way pyloudnorm computes them."""
    return np.array([_rbj_section("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0, rate),
                     _rbj_section("high_pass", 0.0, 0.5, 38.0, rate)])  # fmt: skip


def _rbj_section(kind: str, gain_db: float, q: float, fc: float, rate: float) -> np.ndarray:
    A = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * (fc / rate)
    alpha = np.sin(w0) / (2.0 * q)
    if kind == "high_shelf":
        b0 = A * ((A + 1) + (A - 1) * np.cos(w0) + 2 * np.sqrt(A) * alpha)
        b1 = -2 * A * ((A - 1) + (A + 1) * np.cos(w0))
        b2 = A * ((A + 1) + (A - 1) * np.cos(w0) - 2 * np.sqrt(A) * alpha)
        a0 = (A + 1) - (A - 1) * np.cos(w0) + 2 * np.sqrt(A) * alpha
        a1 = 2 * ((A - 1) - (A + 1) * np.cos(w0))
        a2 = (A + 1) - (A - 1) * np.cos(w0) - 2 * np.sqrt(A) * alpha
    else:  # high_pass
        b0 = (1 + np.cos(w0)) / 2
        b1 = -(1 + np.cos(w0))
        b2 = (1 + np.cos(w0)) / 2
        a0 = 1 + alpha
        a1 = -2 * np.cos(w0)
        a2 = 1 - alpha
    b, a = np.array([b0, b1, b2]) / a0, np.array([a0, a1, a2]) / a0
    return np.concatenate([b / a[0], a / a[0]])
