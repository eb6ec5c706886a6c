"""Whole-script batching on a feature-length script, tiny Qwen3-TTS checkpoints: three schedules in ONE run.

  (a) per-scene static  — today's old shape: per scene, per voice, static batches of --batch rows (a batch runs
                          until its longest row ends; finished rows stay in the batch, idle);
  (b) whole-script static — per voice across the whole script, static batches of --batch rows;
  (c) continuous        — one session over every line, all voices mixed, longest first; a finished row's slot is
                          taken by the next line at the next step.

All three use the same step-wise session code (pipeline.engines.qwen3_session, `policy="static"` for a/b), the same
per-line sampling streams, end-of-speech disabled and per-line token caps proportional to the text
(--frames-per-word, at least --min-frames), so each line costs the same tokens under every schedule and only the
scheduling differs. Lines of different voices use different clone prompts (top characters get their own voice,
the rest share an extras pool). Printed per schedule: lines/s, engine steps, mean busy rows, padding waste (share
of batch row-steps that produced nothing). Targets: (c) ≥ 2× the lines/s of (a); (c) mean busy rows ≥ 7 of 8.

Then peak RSS: the qwen3 engine renders --rss-small and --rss-large lines (natural end of speech, lines stored in
a LineStore through `pipeline.render.render_missing`) in two fresh processes; the large run's peak RSS should stay
within 1.1× of the small one's.

Tiny models say nothing about voice quality or real-model speed (a real step on a Mac GPU costs about the same at
batch 1 and 8, on this CPU it does not): these figures are about scheduling.

Usage:
    python bench/bench_continuous_batching.py                     # Big Fish, first 240 lines
    python bench/bench_continuous_batching.py --lines 0           # the whole script (slow on 2 cores)
    python bench/bench_continuous_batching.py --script ../shared/corpus/fountain/yntswyd.fountain
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_SCRIPT = ROOT.parent / "shared" / "corpus" / "fountain" / "big-fish.fountain"
if not DEFAULT_SCRIPT.exists():
    DEFAULT_SCRIPT = Path("/work/shared/corpus/fountain/big-fish.fountain")


def _engine(models: Path, **render):
    from pipeline.config import load_settings
    from pipeline.engines import create_engine

    settings = load_settings(overrides={f"render.{k}": v for k, v in render.items()})
    engine = create_engine("qwen3", settings, models)
    engine.bench_settings = settings  # what planning needs (line keys depend on the sampling settings)
    return engine


def _cast(engine, screenplay, own_voices: int, extras: int):
    """Clone locks: the `own_voices` characters with most lines get one each, the others share `extras` voices."""
    from collections import Counter

    counts = Counter(d.character for sc in screenplay.scenes for d in sc.dialogues)
    ranked = [name for name, _ in counts.most_common()]
    sample = "The quick brown fox jumps over the lazy dog."
    locks = []
    for i in range(own_voices + extras):
        audio = engine.design(f"voice {i}", sample, [100 + i], "en")[0]
        locks.append(engine.lock(audio, sample, "en", name=f"V{i}", seed=100 + i))
    return {name: locks[i] if i < own_voices else locks[own_voices + i % extras] for i, name in enumerate(ranked)}


def _rows(engine, screenplay, voices, limit: int):
    """(scene index, SessionRow) for the first `limit` spoken lines (0: all), in script order."""
    from pipeline.engines.session import SessionRow
    from pipeline.render import plan_line_jobs

    jobs = plan_line_jobs(screenplay, {c: f"v-{c}" for c in voices}, engine.info().identity(), engine.bench_settings)
    jobs = jobs[:limit] if limit else jobs
    from pipeline.engines.base import RenderJob

    return [(j.scene_index, SessionRow(voices[j.character], RenderJob(key=j.key, text=j.text, seed=j.seed)))
            for j in jobs]


def _schedule(engine, groups, batch: int, policy: str) -> dict:
    """Run `groups` (lists of rows, each group its own session run) with EOS disabled and every take kept."""
    from pipeline.mlx_runtime import on_mlx_thread
    from pipeline.engines.session import SessionStats

    def run():
        model = engine.model("base")
        talker = model.config.talker_config
        old, talker.codec_eos_token_id = talker.codec_eos_token_id, talker.vocab_size
        total = SessionStats(batch_size=batch)
        done = []
        try:
            started = time.perf_counter()
            for group in groups:
                session = engine.session(batch, policy).batch_session()
                session.judge = lambda audio, tokens, cap: None
                session.run(group, done.append)
                total.add(session.stats)
            wall = time.perf_counter() - started
        finally:
            talker.codec_eos_token_id = old
        return total, wall, done

    stats, wall, done = on_mlx_thread(run)
    assert len(done) == sum(len(g) for g in groups) and all(o.ok for o in done)
    return {"digests": {o.key: o.audio.digest() for o in done}, "lines": stats.lines, "seconds": wall, "lines_per_s": stats.lines / wall, "steps": stats.steps,
            "mean_busy_rows": stats.mean_busy_rows, "padding_waste": stats.padding_waste, "tokens": stats.tokens}


def _static_groups(rows, batch: int, per_scene: bool):
    groups: dict[tuple, list] = {}
    for scene, row in rows:
        groups.setdefault((scene if per_scene else 0, id(row.lock)), []).append(row)
    return [g[i:i + batch] for g in groups.values() for i in range(0, len(g), batch)]


def _rss_child(models: Path, script: Path, lines: int, batch: int) -> None:
    """Render `lines` lines through render_missing into a LineStore; print peak RSS (KiB) as JSON."""
    from pipeline.fountain import read_script
    from pipeline.render import plan_line_jobs, render_missing
    from pipeline.store import LineStore

    engine = _engine(models, batch_size=batch, seconds_per_word=0.3, min_seconds=0.8, max_retakes=0)
    screenplay = read_script(script)
    voices = _cast(engine, screenplay, 4, 2)
    jobs = plan_line_jobs(screenplay, {c: f"v-{c}" for c in voices}, engine.info().identity(), engine.bench_settings)[:lines]
    locks = {f"v-{c}": lock for c, lock in voices.items()}
    with tempfile.TemporaryDirectory() as store_dir:
        summary = render_missing(engine, LineStore(store_dir), jobs, locks, batch_size=batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"lines": len(jobs), "rendered": len(summary.rendered), "failed": len(summary.failed),
                      "peak_rss_kib": peak, "mean_busy_rows": summary.engine.mean_busy_rows}))


def _rss(models: Path, script: Path, lines: int, batch: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(lines), "--models", str(models),
                          "--script", str(script), "--batch", str(batch)], capture_output=True, text=True,
                         check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--script", type=Path, default=DEFAULT_SCRIPT)
    ap.add_argument("--models", type=Path, help="tiny models folder (default: built in a temp dir)")
    ap.add_argument("--lines", type=int, default=240, help="first N spoken lines of the script (0: all)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames-per-word", type=float, default=2.0)
    ap.add_argument("--min-frames", type=int, default=5)
    ap.add_argument("--voices", type=int, default=8, help="characters with a voice of their own")
    ap.add_argument("--extras", type=int, default=3, help="voices shared by every other character")
    ap.add_argument("--rss-small", type=int, default=100)
    ap.add_argument("--rss-large", type=int, default=800)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    tmp = None
    if args.models is None:
        from pipeline.testing.tiny import make_tiny_models

        tmp = tempfile.TemporaryDirectory()
        args.models = Path(tmp.name)
        make_tiny_models(args.models)
    if args.rss_child:
        _rss_child(args.models, args.script, args.rss_child, args.batch)
        return

    from pipeline.engines.qwen3 import FRAMES_PER_SECOND
    from pipeline.fountain import read_script

    engine = _engine(args.models, batch_size=args.batch, seconds_per_word=args.frames_per_word / FRAMES_PER_SECOND,
                     min_seconds=args.min_frames / FRAMES_PER_SECOND)
    screenplay = read_script(args.script)
    voices = _cast(engine, screenplay, args.voices, args.extras)
    rows = _rows(engine, screenplay, voices, args.lines)
    scenes = len({s for s, _ in rows})
    print(f"{args.script.name}: {len(rows)} lines{' (a prefix)' if args.lines else ''} in {scenes} scenes, "
          f"{len({id(r.lock) for _, r in rows})} voices, batch {args.batch}, EOS off, caps "
          f"{args.frames_per_word:g} frames/word (min {args.min_frames}); tiny checkpoints, CPU")
    warm = [r for _, r in rows[:args.batch]]
    _schedule(engine, [warm], args.batch, "continuous")  # compile/warm-up, prompts cached
    results = {
        "(a) per-scene static": _schedule(engine, _static_groups(rows, args.batch, True), args.batch, "static"),
        "(b) whole-script static": _schedule(engine, _static_groups(rows, args.batch, False), args.batch, "static"),
        "(c) continuous": _schedule(engine, [[r for _, r in rows]], args.batch, "continuous"),
    }
    print(f"{'schedule':26} {'lines/s':>8} {'steps':>7} {'busy rows':>10} {'waste':>7} {'seconds':>8}")
    for name, r in results.items():
        print(f"{name:26} {r['lines_per_s']:8.2f} {r['steps']:7d} {r['mean_busy_rows']:10.2f} "
              f"{r['padding_waste']:7.1%} {r['seconds']:8.1f}")
    a, c = results["(a) per-scene static"], results["(c) continuous"]
    for name in ("(b) whole-script static", "(c) continuous"):  # same lines, other batch neighbours
        other = results[name]["digests"]
        flips = sum(1 for k, d in a["digests"].items() if other[k] != d)
        print(f"lines whose audio differs between (a) and {name}: {flips} of {len(a['digests'])}")
    speedup = c["lines_per_s"] / a["lines_per_s"]
    print(f"(c)/(a) lines/s: {speedup:.2f}× (target ≥ 2×) — {'met' if speedup >= 2 else 'NOT met'}; "
          f"(c) mean busy rows {c['mean_busy_rows']:.2f} of {args.batch} (target ≥ 7) — "
          f"{'met' if c['mean_busy_rows'] >= 7 else 'NOT met'}")
    if not args.no_rss:
        small = _rss(args.models, args.script, args.rss_small, args.batch)
        large = _rss(args.models, args.script, args.rss_large, args.batch)
        ratio = large["peak_rss_kib"] / small["peak_rss_kib"]
        print(f"peak RSS: {small['lines']} lines {small['peak_rss_kib'] / 1024:.0f} MiB, {large['lines']} lines "
              f"{large['peak_rss_kib'] / 1024:.0f} MiB → {ratio:.3f}× (target ≤ 1.1×) — "
              f"{'met' if ratio <= 1.1 else 'NOT met'} (rendered {small['rendered']}/{large['rendered']}, "
              f"failed {small['failed']}/{large['failed']})")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
