"""What `[delivery]` costs, measured side by side in one run on tiny Qwen3-TTS checkpoints (CPU):

1. casting the sample script with delivery off vs variants (min_lines 1 so the sample's (muttering), (smiling) and
   (quietly) each get a variant; min_similarity -1 so tiny random voices always pass the gate): seconds,
   VoiceDesign takes, locks written. Variants cost casting time only, and a rerun reuses them (third column).
2. the sample's directed lines rendered with delivery off vs instruct: clone-prompt tokens (the instruct turn is
   prefilled once per line) and render seconds.

Tiny random weights say nothing about how a variant sounds; they measure plumbing costs.

Usage:
    python bench/bench_delivery.py               # builds tiny models in a temp dir
    python bench/bench_delivery.py --models DIR
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _settings(**delivery):
    from pipeline.config import load_settings

    over = {"render.max_retakes": 2}
    over.update({f"delivery.{k}": v for k, v in delivery.items()})
    return load_settings(overrides=over)


def _cast(models: Path, home: Path, settings) -> tuple[float, dict, int]:
    from pipeline.casting import cast_script
    from pipeline.engines import create_engine
    from pipeline.fountain import read_script

    engine = create_engine("qwen3", settings, models)
    sp = read_script(REPO / "data" / "sample.fountain")
    t = time.perf_counter()
    results = cast_script(sp, engine, settings, None, home / "auditions", home / "locks", release=False)
    seconds = time.perf_counter() - t
    takes = sum(len(r.auditions) + sum(len(v.auditions) for v in r.variants) for r in results.values()
                if r.source == "designed")
    return seconds, results, takes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, help="tiny models folder (default: build one in a temp dir)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    models = args.models
    if models is None:
        from pipeline.testing.tiny import make_tiny_models

        models = tmp / "models"
        make_tiny_models(models)

    off = _settings(mode="off")
    var = _settings(mode="variants", min_lines=1, min_similarity=-1.0)
    t_off, cast_off, takes_off = _cast(models, tmp / "off", off)
    t_var, cast_var, takes_var = _cast(models, tmp / "var", var)
    t_again, _, _ = _cast(models, tmp / "var", var)
    locks = lambda home: len(list((home / "locks").rglob("*.lock.safetensors")))  # noqa: E731
    print("1. casting data/sample.fountain (tiny, CPU)")
    print(f"   {'':24}{'off':>10}{'variants':>12}{'rerun':>10}")
    print(f"   {'seconds':24}{t_off:>10.1f}{t_var:>12.1f}{t_again:>10.1f}")
    print(f"   {'VoiceDesign takes':24}{takes_off:>10}{takes_var:>12}{'cached':>10}")
    print(f"   {'locks written':24}{locks(tmp / 'off'):>10}{locks(tmp / 'var'):>12}")
    print("   variants: " + "; ".join(f"{n} {v.delivery} {v.status} (similarity {v.similarity:.2f})"
                                       for n, r in cast_var.items() for v in r.variants if v.similarity is not None))

    from pipeline.engines import create_engine
    from pipeline.engines.base import RenderJob
    from pipeline.fountain import read_script
    from pipeline.lock import load_lock
    from pipeline.render import plan_line_jobs

    sp = read_script(REPO / "data" / "sample.fountain")
    voices = {n: r.lock_digest for n, r in cast_off.items()}
    locks_by = {r.lock_digest: load_lock(r.lock_path) for r in cast_off.values()}
    jobs = [j for j in plan_line_jobs(sp, voices, {}, off) if j.instruct]
    rows = {}
    for mode in ("off", "instruct"):
        engine = create_engine("qwen3", _settings(mode=mode), models)
        tokens = sum(engine.clone_prompt_length(locks_by[j.voice_digest], j.text,
                                                j.instruct if mode == "instruct" else None) for j in jobs)
        t = time.perf_counter()
        for j in jobs:
            engine.render(locks_by[j.voice_digest], [RenderJob(j.key, j.text, j.seed, j.instruct)])
        rows[mode] = (tokens, time.perf_counter() - t)
    print(f"2. the sample's {len(jobs)} directed lines, one render call each (tiny, CPU)")
    print(f"   {'':24}{'off':>10}{'instruct':>12}")
    print(f"   {'prompt tokens (sum)':24}{rows['off'][0]:>10}{rows['instruct'][0]:>12}")
    print(f"   {'render seconds':24}{rows['off'][1]:>10.2f}{rows['instruct'][1]:>12.2f}")


if __name__ == "__main__":
    main()
