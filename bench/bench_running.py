"""Running max/min/mean (pipeline.running) against scipy.ndimage, side by side in one run (issue 19).

For arrays of 10^4, 10^5 and 10^6 float64 values, the best-of-N time of each filter call the render makes, with the
render's window sizes at 24 kHz, through scipy.ndimage and through pipeline.running (the results are checked to be
bit-identical first). For the max, a van Herk/Gil-Werman block prefix/suffix scan is timed beside them: the O(n)
alternative that pipeline.running's doubling was chosen over. Then the peak RSS of a fresh interpreter importing
numpy alone, numpy + pipeline.running, and numpy + scipy.ndimage: what a render saves by not importing scipy.ndimage.

The render's arrays are per chunk (1/32 of the audio: 10^5 values ≈ 2 minutes at 24 kHz); limit_true_peak's are per
sample.

    .venv/bin/python bench/bench_running.py [--repeat N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import timeit
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.running import running_max, running_mean, running_min  # noqa: E402

# (label, ours, scipy.ndimage name, size, keywords): the render's calls at 24 kHz (chunk 30 frames)
CALLS = [
    ("leveller._near max 3 constant", running_max, "maximum_filter1d", 3, {"mode": "constant", "cval": 0.0}),
    ("_reach_range max 4 origin -1", running_max, "maximum_filter1d", 4, {"mode": "nearest", "origin": -1}),
    ("_reach_range min 4 origin -1", running_min, "minimum_filter1d", 4, {"mode": "nearest", "origin": -1}),
    ("leveller._limiter min 11", running_min, "minimum_filter1d", 11, {"mode": "nearest"}),
    ("leveller._limiter mean 9", running_mean, "uniform_filter1d", 9, {"mode": "nearest"}),
    ("limit_true_peak min 241", running_min, "minimum_filter1d", 241, {"mode": "nearest"}),
    ("limit_true_peak mean 241", running_mean, "uniform_filter1d", 241, {"mode": "nearest"}),
]
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (this bench) across exec
RSS_CHILD = "import re, {mods}; print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"


def best_of(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def van_herk_max(x: np.ndarray, size: int, mode: str, cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """Reference only: the O(n) block prefix/suffix scan (np.maximum.accumulate over rows of `size` values)."""
    before = size // 2 + origin
    edge = (x[0], x[-1]) if mode == "nearest" else (cval, cval)
    p = np.concatenate([np.full(before, edge[0]), x, np.full(size - 1 - before, edge[1])])
    blocks = -(-len(p) // size)
    p = np.concatenate([p, np.full(blocks * size - len(p), p[-1])]).reshape(blocks, size)
    prefix = np.maximum.accumulate(p, axis=1).ravel()
    suffix = np.maximum.accumulate(p[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.maximum(suffix[: len(x)], prefix[size - 1 : size - 1 + len(x)])


def peak_rss_mib(mods: str) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD.format(mods=mods)], cwd=REPO, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip()) / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    from scipy import ndimage

    rng = np.random.default_rng(0)
    print(f"{'call':32} {'n':>9} {'ndimage ms':>11} {'ours ms':>9} {'ours/nd':>8} {'van Herk ms':>12}")
    for n in (10**4, 10**5, 10**6):
        x = np.minimum(1.0, 0.9 / np.maximum(np.abs(rng.normal(0, 0.5, n)), 1e-12))  # like the limiter's need
        for label, ours, name, size, kw in CALLS:
            ref = getattr(ndimage, name)
            if ours(x, size, **kw).tobytes() != ref(x, size, **kw).tobytes():
                print(f"{label}: NOT bit-identical to scipy.ndimage.{name} at n={n}", file=sys.stderr)
                return 1
            t_nd = best_of(lambda: ref(x, size, **kw), args.repeat)
            t_ours = best_of(lambda: ours(x, size, **kw), args.repeat)
            vh = f"{best_of(lambda: van_herk_max(x, size, **kw), args.repeat) * 1e3:12.3f}" \
                if ours is running_max else ""
            print(f"{label:32} {n:>9} {t_nd * 1e3:11.3f} {t_ours * 1e3:9.3f} {t_ours / t_nd:8.2f} {vh}")
    print("\npeak RSS of a fresh interpreter (MiB):")
    base = peak_rss_mib("numpy")
    for mods in ("numpy", "numpy, pipeline.running", "numpy, scipy.ndimage"):
        rss = peak_rss_mib(mods)
        print(f"  import {mods:26} {rss:7.1f}  ({rss - base:+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
