"""Lines per second on the tiny Qwen3-TTS Base model: batched (batch 8) vs one line at a time, in the same run.

Two measurements, both printed with the batched/sequential ratio (target ≥ 3× at batch 8):

1. fixed length: mlx-audio's `batch_generate` called exactly as the qwen3 engine calls it (shared clone reference,
   same sampling options), with EOS disabled so every line is exactly --frames codec frames in both modes: the same
   work, only the batching differs. The vocoder share is timed separately (mlx-audio decodes each line on its own
   after the batched talker loop, so batching cannot speed that part up). The tiny fast codec (maker v3) decodes
   ~0.25 ms a frame, so on tiny models this ratio is the talker's; with real weights the per-line vocoder is a
   serial share that bounds the end-to-end gain (the printed split shows how much).
2. engine: `Qwen3Engine.render` with natural end-of-speech (lengths vary; a batch waits for its longest line),
   batch_size 8 vs 1. Tiny lines end after ~6 frames on average with a long tail, so here the batch mostly waits
   for its longest line and per-call overheads dominate; expect a much lower ratio than in 1.

Usage:
    python bench/bench_qwen3_batch.py                 # builds tiny models in a temp dir
    python bench/bench_qwen3_batch.py --models DIR --lines 16 --frames 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TEXTS = [
    "Where were you last night?", "I told you, I was at the docks.", "Nobody saw you at the docks.",
    "Then nobody was looking.", "Don't play games with me.", "Who said anything about games?",
    "The captain wants an answer.", "Then the captain can ask me himself.",
]


def _texts(n: int) -> list[str]:
    return [TEXTS[i % len(TEXTS)] for i in range(n)]


def _fixed_length(engine, lock, texts, frames: int, batch: int) -> dict:
    """Both modes through model.batch_generate with EOS disabled: every line is exactly `frames` frames."""
    import mlx.core as mx

    from pipeline.mlx_runtime import on_mlx_thread
    from pipeline.languages import language_name

    def run():
        model = engine.model("base")
        talker = model.config.talker_config
        old_eos = talker.codec_eos_token_id
        decode = model._decode_icl_generated_codes
        spent = {"decode": 0.0}

        def timed_decode(*a, **k):
            t = time.perf_counter()
            out = decode(*a, **k)
            mx.eval(out)
            spent["decode"] += time.perf_counter() - t
            return out

        opts = dict(ref_audio=mx.array(lock.ref_audio), ref_text=lock.ref_text, lang_code=language_name("en"),
                    max_tokens=frames, **engine._sampling())
        talker.codec_eos_token_id = talker.vocab_size  # EOS can never be sampled
        model._decode_icl_generated_codes = timed_decode
        try:
            list(model.batch_generate(texts[:batch], **opts))  # warm-up: compiles for these shapes
            list(model.batch_generate(texts[:1], **opts))
            results = {}
            for mode, size in (("batched", batch), ("sequential", 1)):
                spent["decode"] = 0.0
                frames_done = 0
                mx.random.seed(1)
                t = time.perf_counter()
                for start in range(0, len(texts), size):
                    for r in model.batch_generate(texts[start:start + size], **opts):
                        frames_done += r.token_count
                wall = time.perf_counter() - t
                results[mode] = {"wall": wall, "decode": spent["decode"], "frames": frames_done}
            return results
        finally:
            talker.codec_eos_token_id = old_eos
            del model._decode_icl_generated_codes

    return on_mlx_thread(run)


def _engine_render(settings, models, lock, texts, batch: int) -> dict:
    from pipeline.engines import create_engine
    from pipeline.engines.base import RenderJob

    jobs = [RenderJob(key=f"line-{i}", text=t, seed=1000 + i) for i, t in enumerate(texts)]
    out = {}
    for mode, size in (("batched", batch), ("sequential", 1)):
        engine = create_engine("qwen3", settings.with_overrides({"render.batch_size": size}), models)
        engine.render(lock, jobs[:size])  # warm-up
        t = time.perf_counter()
        outcomes = engine.render(lock, jobs)
        wall = time.perf_counter() - t
        out[mode] = {"wall": wall, "ok": sum(o.ok for o in outcomes), "frames": sum(o.tokens for o in outcomes),
                     "retakes": sum(o.retakes for o in outcomes)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, help="tiny models dir (default: build one in a temp dir)")
    ap.add_argument("--lines", type=int, default=16)
    ap.add_argument("--frames", type=int, default=40, help="frames per line in the fixed-length measurement")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args(argv)

    from pipeline.config import load_settings
    from pipeline.engines import create_engine
    from pipeline.testing.tiny import make_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        models = args.models or Path(tmp) / "tiny"
        make_tiny_models(models)
        settings = load_settings(overrides={"render.batch_size": args.batch})
        engine = create_engine("qwen3", settings, models)
        audition = engine.design("A calm, low voice", "The quick brown fox jumps over the lazy dog.", [7])[0]
        lock = engine.lock(audition, "The quick brown fox jumps over the lazy dog.", name="bench")
        texts = _texts(args.lines)

        print(f"tiny Qwen3-TTS Base ({models / 'base'}), {args.lines} lines, batch {args.batch}")
        fixed = _fixed_length(engine, lock, texts, args.frames, args.batch)
        print(f"\n1. fixed length ({args.frames} frames a line, EOS disabled; mlx-audio batch_generate as the engine "
              f"calls it)")
        for mode, r in fixed.items():
            print(f"   {mode:10s} {args.lines / r['wall']:6.2f} lines/s  {r['frames'] / r['wall']:7.1f} frames/s  "
                  f"wall {r['wall']:6.2f} s  (vocoder {r['decode']:5.2f} s)")
        b, s = fixed["batched"], fixed["sequential"]
        print(f"   ratio batched/sequential: {s['wall'] / b['wall']:.2f}x lines/s "
              f"(talker only, vocoder excluded: {(s['wall'] - s['decode']) / max(b['wall'] - b['decode'], 1e-9):.2f}x)"
              f"  target >= 3x")

        eng = _engine_render(settings, models, lock, texts, args.batch)
        print("\n2. engine.render (natural end of speech, runaway guard on)")
        for mode, r in eng.items():
            print(f"   {mode:10s} {args.lines / r['wall']:6.2f} lines/s  {r['frames'] / max(r['wall'], 1e-9):7.1f} "
                  f"frames/s  wall {r['wall']:6.2f} s  ok {r['ok']}/{args.lines}  retakes {r['retakes']}")
        print(f"   ratio batched/sequential: {eng['sequential']['wall'] / eng['batched']['wall']:.2f}x lines/s")


if __name__ == "__main__":
    main()
