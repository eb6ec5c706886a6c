"""Parse speed: our Fountain parser against screenplain's, on Big Fish (feature length, 148 kB), in the same run.

Usage:
    python bench/bench_parse.py [SCRIPT] [--repeat N]

SCRIPT defaults to ../shared/corpus/fountain/big-fish.fountain. Prints the best-of-N wall time of each parser and the
ratio (target: ours faster than screenplain, ratio < 1).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO.parent / "shared" / "corpus" / "fountain" / "big-fish.fountain"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("script", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    path = Path(args.script)
    if not path.is_file():
        print(f"no script at {path} (pass a .fountain path)", file=sys.stderr)
        return 2
    text = path.read_text(encoding="utf-8-sig")

    from pipeline.fountain import parse_fountain

    ours = best_of(lambda: parse_fountain(text), args.repeat)
    sp = parse_fountain(text)
    print(f"script       {path.name}: {len(text.encode())} bytes, {text.count(chr(10))} lines, "
          f"{len(sp.headed_scenes)} scenes, {sum(1 for _ in sp.dialogues())} dialogue blocks")
    print(f"readthrough  {ours * 1000:8.2f} ms  (best of {args.repeat})")
    try:
        from screenplain.parsers import fountain as screenplain_fountain
    except ImportError:
        print("screenplain  not installed (pip install screenplain) — no comparison")
        return 0
    theirs = best_of(lambda: screenplain_fountain.parse(io.StringIO(text)), args.repeat)
    print(f"screenplain  {theirs * 1000:8.2f} ms  (best of {args.repeat})")
    print(f"ratio        {ours / theirs:8.3f}  (ours / screenplain; < 1 means ours is faster, "
          f"{theirs / ours:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
