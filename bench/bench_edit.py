"""Where an edit rerun's time goes (issue 19: edit rerun ≤ cached rerun + 3 s), measured side by side in one run.

A corpus script is rendered once (cold), then, each in a fresh process, `--rounds` times: a fully cached rerun and
a rerun after editing one dialogue line of the script in place (as a user does; each round edits a different line,
so each edit rerun renders one new line, mixes its scene again and rebuilds the master). Printed per phase: wall,
the report's timings, and the time inside the calls where the master step spends it (assemble_master, copying the
master's samples, fsync, sha256 of written files, deliverables), and the bytes this machine's disks wrote meanwhile
(other processes' writes included: the load that makes an fsync slow).

    .venv/bin/python bench/bench_edit.py                               # yntswyd, instant engine, 3 rounds
    .venv/bin/python bench/bench_edit.py --engine preview --rounds 5 --keep /tmp/bench-edit
    .venv/bin/python bench/bench_edit.py --keep /tmp/bench-edit --reuse --profile   # cProfile of each edit rerun
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_mix import CORPUS_SCRIPT, run_bench_child, timed  # noqa: E402


def _disk_written() -> int:
    """Bytes written so far by this machine's whole disks (/proc/diskstats, 512-byte sectors), 0 where unknown."""
    try:
        rows = Path("/proc/diskstats").read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for row in rows:
        f = row.split()
        if len(f) > 9 and not f[2][-1].isdigit() and not f[2].startswith(("loop", "ram")):
            total += int(f[9]) * 512
    return total


def child(script: str, out: str, engine: str, profile: str, phase: str) -> dict:
    import pipeline.deliver as deliver
    import pipeline.keys as keys

    acc: dict[str, float] = {}
    if phase != "cached":  # as in bench_mix: a cached rerun never imports the mixing code
        import pipeline.assemble as assemble

        timed(assemble, "mix_scene", acc)
        timed(assemble, "assemble_master", acc)
        timed(assemble, "_copy_wav_master", acc, "copy_master")
    timed(deliver, "add_wav_chapters", acc, "chapters")
    timed(deliver, "write_deliverables", acc, "deliverables")
    timed(keys, "sha256_file", acc, "sha256")
    timed(os, "fsync", acc, "fsync")
    import flows.render as flow

    timed(flow, "render_scenes", acc)
    timed(flow, "write_page", acc)
    from bench_flow import start_prefect
    from flows.render import render_flow

    start_prefect()
    written = _disk_written()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    report = render_flow(script, out, engine=engine, overrides={"render.min_seconds": 4.0})
    wall = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    return {"wall": wall, **{k: round(v, 3) for k, v in acc.items()}, "timings": report.get("timings"),
            "rendered": report["counts"]["rendered"], "disk_mb": (_disk_written() - written) / 1e6}  # fmt: skip


def edit_line(original: Path, dest: Path, n: int) -> str:
    """Write `original` to `dest` (may be the same file) with the n-th of a spread of dialogue lines changed; returns
    where."""
    from pipeline.fountain import read_script

    sp = read_script(original)
    dialogues = [d for _, d in sp.dialogues() if d.spoken and d.spoken[0].line]
    d = dialogues[(len(dialogues) // 2 + 7 * n) % len(dialogues)]
    rows = original.read_text(encoding="utf-8").split("\n")
    k = d.spoken[0].line - 1
    rows[k] = rows[k].rstrip() + f" Or so they said, {n + 1} times."
    dest.write_text("\n".join(rows), encoding="utf-8")
    return f"line {k + 1} ({d.character})"


def run_child(script: Path, out: Path, root: Path, engine: str, profile: Path | None, phase: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_bench_child(__file__, [str(script), str(out), engine, str(profile or ""), phase], root / "home",
                             root / "prefect-home", f"{engine} {phase} run")  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**result, "cpu": cpu}  # cpu: the whole process, startup too


_PARTS = ("render_scenes", "mix_scene", "assemble_master", "copy_master", "chapters", "fsync", "sha256",
          "deliverables", "write_page")


def _row(name: str, r: dict) -> str:
    t = r.get("timings") or {}
    parts = " ".join(f"{k} {r[k]:.2f}" for k in _PARTS if k in r)
    return (f"{name:6s} wall {r['wall']:5.2f} s, process cpu {r['cpu']:5.2f} s | report: casting "
            f"{t.get('casting', 0):.2f} master {t.get('master', 0):.2f} other {t.get('other', 0):.2f} | {parts} | "
            f"disk written {r['disk_mb']:5.0f} MB, load {os.getloadavg()[0]:.1f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--script", type=Path, default=CORPUS_SCRIPT)
    ap.add_argument("--engine", default="instant")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder, removed)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: start from the kept folder's render")
    ap.add_argument("--profile", action="store_true", help="cProfile each edit rerun into <folder>/edit-<n>.prof")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(*a.child)))
        return
    if not a.script.is_file():
        raise SystemExit(f"{a.script} not found: pass --script (the corpus lives in ../shared/corpus/fountain/).")
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench-edit-"))
    if a.keep and root.exists() and not a.reuse:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    script, out = root / a.script.name, root / "out"
    try:
        print(f"script {a.script.name}, engine {a.engine}; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}",
              flush=True)  # fmt: skip
        if not (a.reuse and out.is_dir()):
            shutil.copy(a.script, script)
            print(_row("cold", run_child(script, out, root, a.engine, None, "cold")), flush=True)
        extra, extra_cpu = [], []
        for n in range(a.rounds):
            cached = run_child(script, out, root, a.engine, None, "cached")
            print(_row("cached", cached), flush=True)
            what = edit_line(script, script, n)  # edits add up, as a user's do: one more changed line per round
            edit = run_child(script, out, root, a.engine, root / f"edit-{n}.prof" if a.profile else None, "edit")
            print(_row("edit", edit) + f" ({what}, {edit['rendered']} line rendered)", flush=True)
            extra.append(edit["wall"] - cached["wall"])
            extra_cpu.append(edit["cpu"] - cached["cpu"])
        if extra:
            print(f"\nedit − cached per round, wall: {', '.join(f'{e:+.2f}' for e in extra)} s; median "
                  f"{statistics.median(extra):+.2f} s, worst {max(extra):+.2f} s (target ≤ +3 s)\n"
                  f"edit − cached per round, process cpu (less sensitive to other load): "
                  f"{', '.join(f'{e:+.2f}' for e in extra_cpu)} s; median {statistics.median(extra_cpu):+.2f} s")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
