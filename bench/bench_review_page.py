"""Cost of the review page (OUT/index.html) as a render grows: wall time, page size and peak RSS of
`pipeline.review.write_review` on a synthetic render folder — side by side for a short and a feature-length script.

Each size runs in a fresh subprocess (so ru_maxrss is the page's own peak): N scenes of S seconds of 24 kHz mono
noise, L lines per scene in the report, 4 characters with 3 auditions each. The waveform reads each scene in blocks,
so peak memory should not grow with scene length.

    .venv/bin/python bench/bench_review_page.py [--sizes 4x60 120x600] [--lines 40]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATE = 24000


def make_render(out: Path, scenes: int, seconds: float, lines: int) -> None:
    import numpy as np
    import soundfile as sf

    from pipeline.analysis.profile import CharacterProfile
    from pipeline.casting import CastResult
    from pipeline.design import Audition
    from pipeline.render_report import RenderReport, save_render_report
    from pipeline.review import write_cast_results

    rng = np.random.default_rng(0)
    (out / "scenes").mkdir(parents=True)
    records = []
    for i in range(scenes):
        path = out / "scenes" / f"scene-{i + 1:03d}.wav"
        with sf.SoundFile(path, "w", RATE, 1) as f:  # written in blocks: the bench's own memory stays flat
            for _ in range(int(seconds)):
                f.write((rng.standard_normal(RATE) * 0.1).astype("float32"))
        step = seconds / lines
        records.append({"scene": str(i + 1), "index": i, "heading": f"INT. ROOM {i + 1} - DAY", "status": "done",
                        "path": str(path), "duration": seconds, "lines": lines, "failed_lines": [],
                        "loudness": {"lufs": -16.0, "true_peak_db": -1.0},
                        "cues": [{"character": f"C{j % 4}", "text": "A line of dialogue, of an ordinary length.",
                                  "start": j * step, "end": (j + 0.8) * step, "key": f"k{i}-{j}"}
                                 for j in range(lines)]})
    cast = []
    for c in range(4):
        name = f"C{c}"
        auditions = []
        for a in range(3):
            wav = out / "home" / name / f"audition-{a}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, (rng.standard_normal(RATE * 8) * 0.1).astype("float32"), RATE)
            auditions.append(Audition(name, a, a, "a voice", "sample", str(wav), "d", "k"))
        cast.append(CastResult(name, CharacterProfile(name=name), "a voice", tuple(auditions), 0, "most distinct",
                               "/l.safetensors", "0" * 64))
    write_cast_results(out / "cast.json", "bench.fountain", cast)
    save_render_report(out / "render-report.json", RenderReport(
        script="bench.fountain", script_name="bench", status="completed", engine={"name": "instant"},
        counts={"lines": scenes * lines}, scenes=records, wall_seconds=1.0))


def child(out: str) -> dict:
    import numpy  # noqa: F401  (imports are not the page's cost)
    import soundfile  # noqa: F401

    from pipeline.casting import CastResult  # noqa: F401
    from pipeline.review import write_review

    t = time.perf_counter()
    page = write_review(out)
    return {"seconds": round(time.perf_counter() - t, 3), "page_kib": round(page.stat().st_size / 1024, 1),
            "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["4x60", "60x600"], help="SCENESxSECONDS per size")
    ap.add_argument("--lines", type=int, default=40, help="lines per scene")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    print(f"{'scenes':>7} {'s/scene':>8} {'audio h':>8} {'lines':>6} {'page s':>7} {'page KiB':>9} {'RSS MiB':>8}")
    for size in args.sizes:
        scenes, seconds = (int(x) for x in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            make_render(Path(tmp), scenes, seconds, args.lines)
            r = json.loads(subprocess.run([sys.executable, __file__, "--child", tmp], check=True,
                                          capture_output=True, text=True).stdout)
        print(f"{scenes:>7} {seconds:>8} {scenes * seconds / 3600:>8.2f} {scenes * args.lines:>6} "
              f"{r['seconds']:>7} {r['page_kib']:>9} {r['rss_mib']:>8}")


if __name__ == "__main__":
    main()
