"""Ctrl-C in a big render chunk, before/after side by side in one run: seconds from SIGINT to exit, lines stored,
and whether an interrupted report was left.

Each run is a fresh `readthrough render` of a generated 12-scene script (96 spoken lines) with the preview engine
and `render.chunk_lines = 500` — one render chunk, one engine session for every line — into a fresh
READTHROUGH_HOME; SIGINT goes to its process group (as a terminal sends it) once 2 lines are in the line store.
"before" is the code at --before-rev (default: the main commit this work started from, where Ctrl-C was checked
only between chunks), checked out into a temporary git worktree; "after" is this checkout. Issue 17: exit within a
few seconds, with a report saying "interrupted".

    .venv/bin/python bench/bench_ctrl_c.py
    .venv/bin/python bench/bench_ctrl_c.py --runs 5 --before-rev main~3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.testing.scripts import SPOKEN_PER_SCENE, long_script

REPO = Path(__file__).resolve().parent.parent
BEFORE_REV = "368e3a7"  # main before Ctrl-C reached inside a render chunk
SCENES = 12


def _stored(home: Path) -> int:
    lines = home / "lines"
    return sum(1 for _ in lines.rglob("*.wav")) if lines.is_dir() else 0


def interrupt_once(code: Path | None, root: Path) -> dict:
    """One render, SIGINT once 2 lines are stored: {"seconds", "stored", "report", "rc"}."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    settings = root / "one-chunk.toml"
    settings.write_text("[render]\nchunk_lines = 500\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(READTHROUGH_HOME=str(root / "home"), PREFECT_HOME=str(root / "prefect"), HF_HUB_OFFLINE="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONUNBUFFERED="1")
    if code is not None:
        env["PYTHONPATH"] = str(code)
    proc = subprocess.Popen([sys.executable, "-m", "flows", "render", str(long_script(root / "night.fountain", SCENES)),
                             "-o", str(root / "out"), "--engine", "preview", "--settings", str(settings)],
                            env=env, cwd=code or REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    while proc.poll() is None and _stored(root / "home") < 2:
        time.sleep(0.05)
    sent = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=600)
    took = time.perf_counter() - sent
    report = root / "out" / "render-report.json"
    status = json.loads(report.read_text())["status"] if report.is_file() else "none"
    return {"seconds": took, "stored": _stored(root / "home"), "report": status, "rc": proc.returncode}


def measure(code: Path | None, root: Path, runs: int) -> list[dict]:
    return [interrupt_once(code, root / f"run-{n}") for n in range(runs)]


def _row(name: str, before: list[dict], after: list[dict], show) -> None:
    print(f"{name:26} {show(before):>22} {show(after):>22}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="interrupted renders per side")
    ap.add_argument("--before-rev", default=BEFORE_REV, help="git revision measured as 'before'")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ctrl-c-"))
    before_code = root / "before-code"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before_code), args.before_rev],
                   check=True, capture_output=True)
    try:
        before = measure(before_code, root / "before", args.runs)
        after = measure(None, root / "after", args.runs)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before_code)], check=False,
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    total = SCENES * SPOKEN_PER_SCENE
    print(f"Ctrl-C after 2 stored lines; {total} lines in one chunk (render.chunk_lines = 500), preview engine; "
          f"{args.runs} runs each (before = {args.before_rev}, after = this checkout)")
    print(f"{'':26} {'before':>22} {'after':>22}")
    _row("SIGINT to exit, median", before, after,
         lambda rs: f"{statistics.median(r['seconds'] for r in rs):.2f} s")
    _row("SIGINT to exit, range", before, after,
         lambda rs: f"{min(r['seconds'] for r in rs):.2f}–{max(r['seconds'] for r in rs):.2f} s")
    _row(f"lines stored (of {total})", before, after, lambda rs: ", ".join(str(r["stored"]) for r in rs))
    _row("report status", before, after, lambda rs: ", ".join(r["report"] for r in rs))
    _row("exit codes", before, after, lambda rs: ", ".join(str(r["rc"]) for r in rs))


if __name__ == "__main__":
    main()
