"""Start-up of `readthrough render` as a person meets it: before/after figures measured side by side in one run.

Measures, each as a fresh process (Python start-up, imports, server start and all), the median of N runs of:

  arg error     `render SAMPLE -o OUT --scenes 99` (a mistake in the arguments)
  cached rerun  `render SAMPLE -o OUT` again after a completed render (nothing changed)
  flow rerun    the same with READTHROUGH_REPLAY=0 (after only): the path taken when something did change, i.e.
                our own Prefect server plus the cached flow

for "before" — the code at --before-rev (default: the main commit this work started from), checked out into a
temporary git worktree and run from there — and "after" — this checkout. Each side gets its own
READTHROUGH_HOME, PREFECT_HOME and output folder; the engine is `instant` (start-up is what is measured).
Targets (issue 17): cached rerun ≤ 3 s, argument error ≤ 1 s.

    .venv/bin/python bench/bench_startup.py
    .venv/bin/python bench/bench_startup.py --runs 5 --before-rev main~3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample.fountain"
BEFORE_REV = "3528a4e"  # main before the issue-17 work (preflight, own server, replay)


def _env(root: Path, code: Path | None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(READTHROUGH_HOME=str(root / "home"), PREFECT_HOME=str(root / "prefect"), HF_HUB_OFFLINE="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600", **extra)  # a fresh database, a busy machine
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def _run(args: list[str], env: dict, cwd: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows", *args], env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode not in (0, 2):
        print(f"{' '.join(args[:2])} exited {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}", file=sys.stderr)
    return took, done.returncode


def _median(args, env, cwd, runs: int, expect: int) -> float:
    times = []
    for _ in range(runs):
        took, code = _run(args, env, cwd)
        if code != expect:
            raise SystemExit(f"{args} exited {code}, expected {expect} (cwd {cwd})")
        times.append(took)
    return statistics.median(times)


def measure(label: str, code: Path | None, root: Path, runs: int, flow_rerun: bool) -> dict:
    cwd = code or REPO
    out = root / "out"
    env = _env(root, code)
    for sub in ("home", "prefect"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    render = ["render", str(SAMPLE), "-o", str(out), "--engine", "instant"]
    # the Prefect database is created up front (untimed): a fresh one can take longer than Prefect's own start-up
    # deadline for its temporary server on a busy machine
    subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env, cwd=cwd,
                   capture_output=True)
    took, rc = _run(render, env, cwd)  # the first, cold render fills the caches (not part of the figures)
    if rc != 0:  # a fresh Prefect database on a busy machine can miss the server's start-up deadline: once more
        took, rc = _run(render, env, cwd)
    if rc != 0:
        raise SystemExit(f"{label}: the cold render failed ({rc})")
    figures = {"cold render": took,
               "arg error": _median(render[:-2] + ["--scenes", "99"], env, cwd, runs, expect=2),
               "cached rerun": _median(render, env, cwd, runs, expect=0)}
    if flow_rerun:
        figures["flow rerun"] = _median(render, _env(root, code, READTHROUGH_REPLAY="0"), cwd, runs, expect=0)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="timed runs per figure (median)")
    ap.add_argument("--before-rev", default=BEFORE_REV, help="git revision measured as 'before'")
    ap.add_argument("--keep", type=Path, help="keep the work folders here")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-startup-"))
    before_code = root / "before-code"
    if before_code.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before_code)], check=False)
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before_code), args.before_rev],
                   check=True, capture_output=True)
    try:
        before = measure("before", before_code, root / "before", args.runs, flow_rerun=False)
        after = measure("after", None, root / "after", args.runs, flow_rerun=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before_code)], check=False,
                       capture_output=True)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"readthrough render {SAMPLE.name} --engine instant; median of {args.runs} runs, fresh process each "
          f"(before = {args.before_rev}, after = this checkout)")
    print(f"{'':14} {'before':>9} {'after':>9}  target")
    targets = {"arg error": "≤ 1 s", "cached rerun": "≤ 3 s"}
    for name in ("cold render", "arg error", "cached rerun", "flow rerun"):
        b = f"{before[name]:.2f} s" if name in before else "—"
        a = f"{after[name]:.2f} s" if name in after else "—"
        print(f"{name:14} {b:>9} {a:>9}  {targets.get(name, '')}")
    print("flow rerun = something changed: our own Prefect server + the cached flow (READTHROUGH_REPLAY=0).")


if __name__ == "__main__":
    main()
