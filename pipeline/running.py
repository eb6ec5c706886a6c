"""Running (sliding-window) max, min and mean over 1-D float arrays, numpy only.

The same values as scipy.ndimage's maximum_filter1d, minimum_filter1d and uniform_filter1d for the edge modes
"nearest" and "constant", bit for bit, without importing scipy.ndimage (~28 MiB of RSS that a render would
otherwise pay and a cached rerun never does: bench/bench_running.py). Window i covers the `size` values from
x[i - size//2 - origin] on, values outside the array being the nearest edge value ("nearest") or `cval`
("constant"), as in scipy.

max and min are exact by nature: the extreme of windows of 2, 4, 8 … values by doubling, then each window the
extreme of two overlapping power-of-two windows that cover it: ⌊log2 size⌋ + 1 contiguous whole-array passes (2–4
for the leveller's windows of 3–11 values, 8 for limit_true_peak's 241). Measured faster than van Herk/Gil-Werman's
O(n) block prefix/suffix scans, whose np.maximum.accumulate over rows of `size` values is slow
(bench/bench_running.py).

The mean repeats scipy's arithmetic in its order: a running sum started at 0.0 over the first window, updated by
(value entering − value leaving) per step, each output that sum ÷ size. np.add.accumulate adds sequentially, as
scipy's C loop does (np.sum and np.cumsum differences would not give the same bits).

Inputs are floating point and NaN-free; -0.0 and 0.0 compare equal, so which of the two a max or min returns may
differ from scipy's. max and min keep the input's dtype; the mean is computed in float64 and returned in the
input's dtype, as scipy does.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Mode = Literal["nearest", "constant"]


def running_max(x: np.ndarray, size: int, *, mode: Mode, cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """Per element: the largest value in its window (scipy.ndimage.maximum_filter1d)."""
    return _extreme(np.maximum, x, size, mode, cval, origin)


def running_min(x: np.ndarray, size: int, *, mode: Mode, cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """Per element: the smallest value in its window (scipy.ndimage.minimum_filter1d)."""
    return _extreme(np.minimum, x, size, mode, cval, origin)


def running_mean(x: np.ndarray, size: int, *, mode: Mode, cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """Per element: the mean of its window (scipy.ndimage.uniform_filter1d)."""
    x = _checked(x, size, mode, origin)
    n = len(x)
    if not n:
        return x.copy()
    p = _padded(x.astype(np.float64, copy=False), size, mode, cval, origin)
    steps = np.empty(1 + size + n - 1)
    steps[0] = 0.0  # scipy's sum starts at 0.0 (so a window of -0.0 sums to 0.0, as there)
    steps[1 : size + 1] = p[:size]
    np.subtract(p[size:], p[: n - 1], out=steps[size + 1 :])  # the value entering − the value leaving
    sums = np.add.accumulate(steps, out=steps)[size:]
    sums /= float(size)
    return sums.astype(x.dtype, copy=False)


def _extreme(op: np.ufunc, x: np.ndarray, size: int, mode: Mode, cval: float, origin: int) -> np.ndarray:
    x = _checked(x, size, mode, origin)
    n = len(x)
    if not n or size == 1:
        return x.copy()
    m = _padded(x, size, mode, cval, origin)  # n + size - 1 values: window i is m[i : i + size]
    w = 1
    while 2 * w <= size:  # m[i]: the extreme of the 2w values from i on
        m = op(m[:-w], m[w:])
        w *= 2
    return op(m[:n], m[size - w : size - w + n])  # two windows of w ≥ size/2 that cover window i


def _checked(x: np.ndarray, size: int, mode: str, origin: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"running filters take a 1-D float array, not {x.ndim}-D {x.dtype}")
    if size < 1:
        raise ValueError(f"window size must be at least 1, not {size}")
    if mode not in ("nearest", "constant"):
        raise ValueError(f"mode must be 'nearest' or 'constant', not {mode!r}")
    if not -(size // 2) <= origin <= (size - 1) // 2:
        raise ValueError(f"origin {origin} is outside the window of size {size}: use {-(size // 2)} … "
                         f"{(size - 1) // 2}")
    return x


def _padded(x: np.ndarray, size: int, mode: Mode, cval: float, origin: int) -> np.ndarray:
    """x with size//2 + origin values before it and the rest of the window after it, as scipy's line buffer."""
    before = size // 2 + origin
    after = size - 1 - before
    out = np.empty(len(x) + size - 1, x.dtype)
    out[before : before + len(x)] = x
    out[:before] = x[0] if mode == "nearest" else cval
    out[before + len(x) :] = x[-1] if mode == "nearest" else cval
    return out
