"""Mixing and mastering cost (issue 19): the render of a corpus script with the old mixing path and the new one,
side by side in one run, for the instant and the preview engine.

For each engine and path, each phase in a fresh process (so peak RSS is that phase's own): a cold render (empty
work dir), a fully cached rerun, and a rerun after editing one dialogue line. Printed per row: wall, time inside
mix_scene and assemble_master (timed around the calls in both paths), mixing share of the wall, peak RSS.

  old     the mix and master of commit bench/_old_mix.OLD_COMMIT (iterative loudness, whole scenes in memory, master
          metered and written in two streaming passes), loaded from git history into this process only
  serial  today's mix and master, each scene mixed between two engine calls (render.mix_while_rendering = false)
  new     today's pipeline (one-pass leveller, streamed scenes, master from the scenes' block figures, copied
          samples), each scene mixed on a second thread while the engine renders the next lines

"mixing" is the time inside mix_scene (all of it, overlapped or not); "waited" is the wall the render spent on
mixing (report timings.mixing: mixes between engine calls, or waited for after the last one), and the mixing share
is waited ÷ wall. With serial and new in one run, "cost" cross-checks it without the report: new's wall less
serial's wall without its mixing.

The cached rerun runs as a user's does: nothing is timed in it (the wrappers would import the mixing code, which a
rerun that mixes nothing never loads), so its peak RSS is a fair baseline. Each phase lists the big scipy
subpackages it loaded (scipy.signal, scipy.ndimage, ...: tens of MiB each); a render should load none.

Targets: mixing ≤ 10 % of a preview render's wall; peak RSS of a render ≤ 1.3× a cached rerun's; edit rerun ≤
cached rerun + 3 s.

    .venv/bin/python bench/bench_mix.py                       # yntswyd, instant + preview, old + serial + new
    .venv/bin/python bench/bench_mix.py --engines instant --paths new --keep /tmp/bench-mix
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CORPUS_SCRIPT = REPO.parent / "shared" / "corpus" / "fountain" / "yntswyd.fountain"
if not CORPUS_SCRIPT.is_file():
    CORPUS_SCRIPT = Path("/work/shared/corpus/fountain/yntswyd.fountain")


# ------------------------------------------------------------------------------------------------ child


def timed(owner, name: str, acc: dict, label: str | None = None) -> None:
    """Replace `owner.name` by a wrapper adding its seconds to acc[label or name] (skipped where the code measured
    lacks it, as an older checkout may)."""
    original = getattr(owner, name, None)
    if original is None:
        return

    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            key = label or name
            acc[key] = acc.get(key, 0.0) + time.perf_counter() - t

    setattr(owner, name, wrapper)


def child(script: str, out: str, engine: str, path: str, phase: str) -> dict:
    overrides = {"render.mix_while_rendering": path == "new"}
    acc: dict[str, float] = {}
    if phase != "cached":  # a cached rerun mixes nothing and never imports the mixing code: importing it here
        import pipeline.assemble as assemble  # would inflate the baseline

        if path == "old":
            from _old_mix import old_functions

            assemble.mix_scene, assemble.assemble_master = old_functions()
        timed(assemble, "mix_scene", acc)  # flows/tasks import these from pipeline.assemble at call time
        timed(assemble, "assemble_master", acc)
    from bench_flow import start_prefect
    from flows.render import render_flow

    startup = start_prefect()  # the ephemeral server's start is not the render's cost: paid before timing
    t0 = time.perf_counter()
    report = render_flow(script, out, engine=engine, overrides=overrides)
    wall = time.perf_counter() - t0
    return {"wall": wall, "prefect_start": startup, "mixing": acc.get("mix_scene", 0.0),
            "master": acc.get("assemble_master", 0.0),
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rendered": report["counts"]["rendered"], "audio_min": report["audio_seconds"] / 60,
            "timings": report.get("timings"), "lufs": (report.get("master") or {}).get("lufs"),
            "scipy": scipy_subpackages()}  # fmt: skip


def scipy_subpackages() -> list[str]:
    """The scipy subpackages this process imported (scipy.signal, scipy.ndimage, ...), not scipy's own core or the
    single compiled kernels pipeline.iir loads on their own."""
    names = {m.split(".")[1] for m in sys.modules if m.startswith("scipy.") and not m.startswith("scipy._")}
    return sorted(n for n in names if f"scipy.{n}" in sys.modules and n != "version")


# ------------------------------------------------------------------------------------------------ parent


def edit_one_line(script: Path, dest: Path) -> str:
    """Copy `script` to `dest` with one dialogue line (in the middle of the script) changed; returns the edit."""
    from pipeline.fountain import read_script

    sp = read_script(script)
    dialogues = [(i, d) for i, d in sp.dialogues() if d.spoken and d.spoken[0].line]
    _, d = dialogues[len(dialogues) // 2]
    rows = script.read_text(encoding="utf-8").split("\n")
    n = d.spoken[0].line - 1
    rows[n] = rows[n].rstrip() + " Or so they said."
    dest.write_text("\n".join(rows), encoding="utf-8")
    return f"line {n + 1} ({d.character})"


def run_bench_child(bench: str, args: list[str], home: Path, prefect_home: Path, what: str) -> dict:
    """Run `bench --child args` in a fresh process with its own work and Prefect homes (an ephemeral server, quiet
    logs, no hub); its last line of output is its JSON result."""
    env = {**os.environ, "READTHROUGH_HOME": str(home), "PREFECT_HOME": str(prefect_home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, bench, "--child", *args], env=env, capture_output=True, text=True,
                          cwd=REPO)  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(script: Path, out: Path, home: Path, engine: str, path: str, prefect_home: Path, phase: str) -> dict:
    t0 = time.perf_counter()
    result = run_bench_child(__file__, [str(script), str(out), engine, path, phase], home, prefect_home,
                             f"{engine}/{path}")  # fmt: skip
    result["process"] = time.perf_counter() - t0
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--script", type=Path, default=CORPUS_SCRIPT)
    ap.add_argument("--engines", nargs="+", default=["instant", "preview"])
    ap.add_argument("--paths", nargs="+", default=["old", "serial", "new"], choices=["old", "serial", "new"])
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder, removed)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(*a.child)))
        return
    if not a.script.is_file():
        raise SystemExit(f"{a.script} not found: pass --script (the corpus lives in ../shared/corpus/fountain/).")
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench-mix-"))
    if a.keep and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        script = root / a.script.name
        shutil.copy(a.script, script)
        edited = root / f"edited-{a.script.name}"
        what = edit_one_line(script, edited)
        prefect_home = root / "prefect-home"
        print(f"script {a.script.name}; edit: {what}; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}",
              flush=True)  # fmt: skip
        rows = []
        for engine in a.engines:
            for path in a.paths:
                home, out = root / f"home-{engine}-{path}", root / f"out-{engine}-{path}"
                cold = run_child(script, out, home, engine, path, prefect_home, "cold")
                cached = run_child(script, out, home, engine, path, prefect_home, "cached")
                edit = run_child(edited, out, home, engine, path, prefect_home, "edit")
                rows.append((engine, path, cold, cached, edit))
                waited = cold["timings"]["mixing"]
                print(f"{engine:8s} {path:6s} cold {cold['wall']:6.1f} s (mixing {cold['mixing']:5.1f} s, waited "
                      f"{waited:5.1f} s = {waited / cold['wall'] * 100:4.1f} %, master {cold['master']:4.1f} s, "
                      f"{cold['audio_min']:.1f} min audio) RSS {cold['rss_mib']:5.0f} MiB | cached {cached['wall']:5.1f}"
                      f" s RSS {cached['rss_mib']:5.0f} MiB"
                      f" | edit {edit['wall']:5.1f} s (mixing {edit['mixing']:4.1f}"
                      f" s, master {edit['master']:4.1f} s) RSS {edit['rss_mib']:5.0f} MiB", flush=True)  # fmt: skip
                print(f"{'':16s}report timings, cold: {cold['timings']}", flush=True)
                print(f"{'':16s}scipy subpackages loaded: " + "; ".join(
                    f"{name} {', '.join(r['scipy']) or 'none'}" for name, r in (("cold", cold), ("cached", cached),
                                                                               ("edit", edit))), flush=True)  # fmt: skip
        print("\ntargets (new path): mixing ≤ 10 % of a preview render; render peak RSS ≤ 1.3× cached; "
              "edit ≤ cached + 3 s")
        serial = {engine: cold for engine, path, cold, _, _ in rows if path == "serial"}
        for engine, path, cold, cached, edit in rows:
            share = cold["timings"]["mixing"] / cold["wall"] * 100
            ratio = cold["rss_mib"] / cached["rss_mib"]
            extra = edit["wall"] - cached["wall"]
            ok = lambda c: "ok" if c else "MISSED"  # noqa: E731
            cost = ""
            if path == "new" and engine in serial:
                spent = cold["wall"] - (serial[engine]["wall"] - serial[engine]["timings"]["mixing"])
                slower = cold["timings"]["engine"] - serial[engine]["timings"]["engine"]
                cost = (f" (cost {spent:+.1f} s = {spent / cold['wall'] * 100:+.1f} % against serial less its mixing;"
                        f" engine {slower:+.1f} s beside the mixing)")
            print(f"{engine:8s} {path:6s} mixing share {share:4.1f} %"
                  f" ({ok(share <= 10) if engine == 'preview' else '-'}){cost}"
                  f" | RSS render/cached {ratio:4.2f}× ({ok(ratio <= 1.3)}) | edit − cached {extra:+5.1f} s "
                  f"({ok(extra <= 3)})")  # fmt: skip
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
