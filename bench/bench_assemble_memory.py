"""Peak RSS of assembling the master from 100 vs 800 synthetic lines; it must not grow with the scene count.

Each size runs in fresh subprocesses: one mixes the scenes (8 lines of 1.5 s per scene), another only assembles
the master from those scene files, so its ru_maxrss is the master's own peak. Prints a table.

    .venv/bin/python bench/bench_assemble_memory.py [--sizes 100 800] [--line-seconds 1.5]
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

LINES_PER_SCENE = 8


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; macOS reports bytes


def child_mix(work: Path, n_lines: int, line_seconds: float) -> dict:
    import numpy as np
    import soundfile as sf

    from pipeline.assemble import MixLine, mix_scene
    from pipeline.config import Settings

    settings = Settings()
    rate = settings.output.sample_rate
    rng = np.random.default_rng(0)
    variants = []
    for v in range(8):
        path = work / "lines" / f"v{v}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), rng.normal(0, 0.05 * (v + 1), int(line_seconds * rate)).astype("float32"), rate)
        variants.append(path)
    scenes = []
    for s in range(0, n_lines, LINES_PER_SCENE):
        lines = [
            MixLine(f"k{i}", ["ANNA", "BEN", "CARA"][i % 3], f"Line {i}.", variants[i % 8])
            for i in range(s, min(n_lines, s + LINES_PER_SCENE))
        ]
        res = mix_scene(lines, work / "scenes" / f"scene-{s // LINES_PER_SCENE:04d}", settings,
                        scene_index=s // LINES_PER_SCENE, heading=f"SCENE {s // LINES_PER_SCENE}")  # fmt: skip
        scenes.append(res.to_dict())
    (work / "scenes.json").write_text(json.dumps(scenes))
    return {"scenes": len(scenes), "peak_rss_mib": _rss_mib()}


def child_master(work: Path) -> dict:
    from pipeline.assemble import assemble_master
    from pipeline.timeline import SceneMixResult
    from pipeline.config import Settings

    scenes = [SceneMixResult.from_dict(d) for d in json.loads((work / "scenes.json").read_text())]
    base = _rss_mib()
    t0 = time.perf_counter()
    master = assemble_master(scenes, work / "out", Settings(), title="Bench")
    return {
        "audio_min": master.duration / 60, "seconds": time.perf_counter() - t0, "rss_before_mib": base,
        "peak_rss_mib": _rss_mib(), "master_mib": master.path.stat().st_size / 2**20, "lufs": master.lufs,
    }


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 800])
    ap.add_argument("--line-seconds", type=float, default=1.5)
    ap.add_argument("--child", choices=["mix", "master"])
    ap.add_argument("--work")
    ap.add_argument("--lines", type=int)
    a = ap.parse_args()
    if a.child == "mix":
        print(json.dumps(child_mix(Path(a.work), a.lines, a.line_seconds)))
        return
    if a.child == "master":
        print(json.dumps(child_master(Path(a.work))))
        return
    print(f"{'lines':>6} {'scenes':>6} {'audio min':>9} {'master MiB':>10} {'mix peak RSS':>12} "
          f"{'master peak RSS':>15} {'master s':>8}")  # fmt: skip
    peaks = []
    for n in a.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-assemble-") as tmp:
            mix = _run("--child", "mix", "--work", tmp, "--lines", str(n), "--line-seconds", str(a.line_seconds))
            m = _run("--child", "master", "--work", tmp)
        peaks.append(m["peak_rss_mib"])
        print(f"{n:>6} {mix['scenes']:>6} {m['audio_min']:>9.1f} {m['master_mib']:>10.1f} "
              f"{mix['peak_rss_mib']:>9.0f} MiB {m['peak_rss_mib']:>12.0f} MiB {m['seconds']:>8.1f}")  # fmt: skip
    growth = peaks[-1] - peaks[0]
    print(f"master peak RSS growth {a.sizes[0]} -> {a.sizes[-1]} lines: {growth:+.1f} MiB "
          f"({'flat' if abs(growth) < 0.1 * peaks[0] + 16 else 'GROWS'})")  # fmt: skip


if __name__ == "__main__":
    main()
