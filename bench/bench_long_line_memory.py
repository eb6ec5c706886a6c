"""Peak RSS of a full preview-engine render (`readthrough render`, ephemeral Prefect) of a script whose one speech
has 20,000 words (spread over many source lines, so the parser's per-line check passes), next to the sample script
and to the same speech with the limit raised. The line-job guard (`render.max_words_per_line`, default 400,
`long_lines = "truncate"`) bounds the work of one line whatever the input; issue 18 measured 15 GB before it.

Each case runs in a fresh process; its peak RSS is ru_maxrss of that process tree (the render process is the
largest). Target: under 1 GB for the 20,000-word speech with default settings.

    .venv/bin/python bench/bench_long_line_memory.py [--words 20000] [--raised 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = ("the lamp turns and the sea keeps its counsel while the keeper counts the ships that never came home "
         "again").split()


def long_speech_script(path: Path, words: int, per_line: int = 12) -> Path:
    body = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(per_line)) for i in range(0, words, per_line)]
    path.write_text("Title: Long Speech\n\nINT. LIGHTHOUSE - NIGHT\n\nMARGARET\n" + "\n".join(body)
                    + "\n\nTOM\nAre you done?\n", encoding="utf-8")
    return path


def measure(script: Path, work: Path, overrides: dict | None = None) -> dict:
    settings = None
    if overrides:
        settings = work / "settings.toml"
        settings.write_text("".join(f"[{k.split('.')[0]}]\n{k.split('.')[1]} = {json.dumps(v)}\n"
                                    for k, v in overrides.items()))
    code = ("import resource, sys, runpy; sys.argv = sys.argv[1:]; rc = 0\n"
            "try:\n    runpy.run_module('flows', run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code or 0\n"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    cmd = [sys.executable, "-c", code, "readthrough", "render", str(script), "-o", str(work / "out"),
           "--engine", "preview"] + (["--settings", str(settings)] if settings else [])
    env = {**os.environ, "READTHROUGH_HOME": str(work / "home"), "PREFECT_HOME": str(work / "prefect"),
           "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    rss = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("RSS ")), 0)
    report = json.loads((work / "out" / "render-report.json").read_text()) if (work / "out").is_dir() else {}
    return {"exit": proc.returncode, "peak_rss_mib": rss / 1024, "wall_s": wall,
            "audio_s": report.get("audio_seconds", 0.0), "warnings": len(report.get("warnings", []))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=20_000)
    ap.add_argument("--raised", type=int, default=2_000, help="max_words_per_line for the comparison row")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rt-bench-long-") as tmp:
        tmp = Path(tmp)
        cases = [("sample script (18 lines)", REPO / "data" / "sample.fountain", None),
                 (f"{args.words:,}-word speech, default limit (400)", None, None),
                 (f"{args.words:,}-word speech, limit {args.raised:,}", None,
                  {"render.max_words_per_line": args.raised})]
        for i, (name, script, overrides) in enumerate(cases):
            work = tmp / f"case{i}"
            work.mkdir()
            script = script or long_speech_script(work / "long.fountain", args.words)
            rows.append((name, measure(script, work, overrides)))
    print(f"{'case':45s} {'exit':>4s} {'peak RSS MiB':>13s} {'wall s':>7s} {'audio s':>8s} {'warnings':>8s}")
    for name, r in rows:
        print(f"{name:45s} {r['exit']:4d} {r['peak_rss_mib']:13.0f} {r['wall_s']:7.1f} {r['audio_s']:8.1f} "
              f"{r['warnings']:8d}")


if __name__ == "__main__":
    main()
