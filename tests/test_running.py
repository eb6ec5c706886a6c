"""pipeline.running against scipy.ndimage, bit for bit, and the render path without scipy.ndimage."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pipeline.running import running_max, running_mean, running_min

REPO = Path(__file__).resolve().parent.parent
OURS_AND_SCIPY = [(running_max, ndimage.maximum_filter1d), (running_min, ndimage.minimum_filter1d),
                  (running_mean, ndimage.uniform_filter1d)]
# The render's sizes: leveller _near 3 (2r+1), _reach_range 4 (2r+2, origin -1), _limiter 9 and 11 (2w+1, 2w+3 at
# 24 kHz); limit_true_peak 241 (2k+1 at 24 kHz); and others either side, odd and even.
SIZES = [1, 2, 3, 4, 5, 6, 9, 11, 15, 16, 241]


def origins(size: int) -> list[int]:
    return sorted({0, -1, -(size // 2), (size - 1) // 2} & set(range(-(size // 2), (size - 1) // 2 + 1)))


def signal(n: int, seed: int, dtype=np.float64) -> np.ndarray:
    """Values over 16 decades with both signs and runs of repeats: any change in the order of the mean's additions
    changes some bits, and ties between equal values are common."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n) * 10.0 ** rng.integers(-8, 8, n)
    x[rng.random(n) < 0.2] = 0.5
    return x.astype(dtype)


def assert_same(ours, ref, x, size, **kw):
    got, want = ours(x, size, **kw), ref(x, size, **kw)
    assert got.dtype == want.dtype and got.shape == want.shape, (ours.__name__, size, kw)
    assert got.tobytes() == want.tobytes(), f"{ours.__name__} size={size} {kw} n={len(x)}: " \
                                            f"largest difference {np.max(np.abs(got - want))}"


@pytest.mark.parametrize("ours,ref", OURS_AND_SCIPY, ids=lambda f: getattr(f, "__name__", ""))
@pytest.mark.parametrize("mode", ["nearest", "constant"])
@pytest.mark.parametrize("size", SIZES)
def test_bit_identical_to_scipy(ours, ref, mode, size):
    for origin in origins(size):
        for n in sorted({0, 1, 2, size - 1, size, size + 1, 3 * size + 2, 2_000}):
            for cval in ([0.0, 0.75, -3.0] if mode == "constant" else [0.0]):
                x = signal(n, seed=n * 1000 + size)
                assert_same(ours, ref, x, size, mode=mode, cval=cval, origin=origin)


@pytest.mark.parametrize("ours,ref", OURS_AND_SCIPY, ids=lambda f: getattr(f, "__name__", ""))
def test_float32_in_float32_out_as_scipy(ours, ref):
    """The leveller's per-chunk peaks are float32."""
    for size, origin in [(3, 0), (4, -1), (11, 0)]:
        for mode in ("nearest", "constant"):
            assert_same(ours, ref, signal(5_000, seed=size, dtype=np.float32), size, mode=mode, origin=origin)


@pytest.mark.parametrize("ours,ref", OURS_AND_SCIPY, ids=lambda f: getattr(f, "__name__", ""))
def test_long_arrays_and_audio_like_values(ours, ref):
    rng = np.random.default_rng(7)
    gains = np.minimum(1.0, 0.9 / np.maximum(np.abs(rng.normal(0, 0.5, 300_000)), 1e-12))  # like the limiter's need
    for size in (9, 11, 241):
        assert_same(ours, ref, gains, size, mode="nearest")
        assert_same(ours, ref, signal(300_000, seed=size), size, mode="constant", cval=0.0)


def test_the_inputs_tell_a_wrong_mean_or_origin_apart():
    """The comparisons above can fail: on these inputs the same sums in another order (the prefix-sum difference,
    a convolution, dividing each step before adding as scipy once did) and a window one place off differ from
    scipy somewhere."""
    x, size = signal(2_000, seed=3), 11
    want = ndimage.uniform_filter1d(x, size, mode="nearest")
    p = np.pad(x, size // 2, mode="edge")
    c = np.concatenate([[0.0], np.cumsum(p)])
    steps = np.concatenate([[p[:size].sum() / size], (p[size:] - p[:-size]) / size])
    for wrong in [(c[size:] - c[:-size]) / size, np.convolve(p, np.ones(size), "valid") / size,
                  np.add.accumulate(steps)]:
        assert not np.array_equal(wrong, want)
    for (ours, ref), beyond in zip(OURS_AND_SCIPY, [1e9, -1e9, 1e9]):  # a cval that wins at the edges
        assert not np.array_equal(ours(x, 4, mode="nearest", origin=0), ref(x, 4, mode="nearest", origin=-1))
        assert not np.array_equal(ours(x, 5, mode="nearest"), ref(x, 5, mode="constant", cval=beyond))


def test_a_mean_of_negative_zeros_is_positive_zero_as_in_scipy():
    """scipy's sum starts at 0.0, and 0.0 + -0.0 is 0.0. (A max or min of -0.0 and 0.0 may differ from scipy's:
    they compare equal; a render's peaks and gains are never -0.0.)"""
    x = np.full(20, -0.0)
    assert_same(running_mean, ndimage.uniform_filter1d, x, 5, mode="nearest")
    assert not np.signbit(running_mean(x, 5, mode="nearest")).any()


def test_known_values():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    assert running_max(x, 3, mode="constant", cval=0.0).tolist() == [3, 4, 4, 5, 5]
    assert running_min(x, 3, mode="nearest").tolist() == [1, 1, 1, 1, 1]
    assert running_min(x, 2, mode="nearest", origin=-1).tolist() == [1, 1, 1, 1, 5]  # x[i], x[i + 1]
    assert running_max(x, 2, mode="nearest").tolist() == [3, 3, 4, 4, 5]  # x[i - 1], x[i]
    assert running_mean(x, 3, mode="constant", cval=3.0).tolist() == [7 / 3, 8 / 3, 2, 10 / 3, 3]


@pytest.mark.parametrize("call,error,words", [
    (lambda: running_max(np.zeros(4), 4, mode="nearest", origin=2), ValueError, "origin 2 is outside"),
    (lambda: running_min(np.zeros(4), 0, mode="nearest"), ValueError, "at least 1"),
    (lambda: running_mean(np.zeros(4), 3, mode="reflect"), ValueError, "'nearest' or 'constant'"),
    (lambda: running_max(np.zeros((2, 3)), 3, mode="nearest"), TypeError, "1-D float array"),
    (lambda: running_max(np.zeros(3, int), 3, mode="nearest"), TypeError, "1-D float array"),
])
def test_bad_arguments_say_what_is_allowed(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_no_pipeline_module_imports_scipy_ndimage():
    found = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [f"{path.relative_to(REPO)}:{node.lineno}" for name in names
                      if name == "scipy.ndimage" or name.startswith("scipy.ndimage.")]
    assert not found


def test_the_leveller_neither_imports_nor_runs_scipy_ndimage():
    """A fresh interpreter, as a render starts, imports the leveller and levels and limits a signal with it:
    scipy.ndimage costs ~28 MiB of RSS that a cached rerun never pays (bench/bench_running.py)."""
    code = ("import json, sys, numpy as np\n"
            "import pipeline.leveller as lv, pipeline.loudness as ld\n"
            "imported = 'scipy.ndimage' in sys.modules\n"
            "x = np.random.default_rng(0).normal(0, 0.3, (3 * 24000, 2))\n"
            "lv.normalise_array(x, 24000, ld.LoudnessTarget('lufs', -6.0, -1.0))\n"
            "ld.limit_true_peak(x, 24000, -1.0)\n"
            "print(json.dumps({'imported': imported, 'ran': 'scipy.ndimage' in sys.modules, \n"
            "                  'scipy.signal': 'scipy.signal' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"imported": False, "ran": False, "scipy.signal": False}  # scipy.signal would load it too
