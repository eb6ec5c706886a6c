"""The `cast` flow: parse → evidence → the casting loop of `pipeline.casting` with each step a cached task.

`cast_characters` is shared with the render flow (which calls it inside its own run — a subflow would cost ≈1.2 s
for nothing). The loop itself lives in `pipeline.casting.cast_characters`; this module only passes it cached steps
(`cached_steps`).

Cache keys: analyze = `analysis.profile_key` (evidence digest + analyzer + overrides); design = description +
seeds + sample text + design model; pick = audition digests + digests of the voices already cast + pin; lock =
chosen audition digest + reference text + engine/model ids + name; delivery variant (pipeline.variants) = the
character, the delivery, its line count, pin, description, neutral lock digest, seeds and `[delivery]` settings.
Editing one line changes that character's
evidence, so its analysis re-runs — but an unchanged description hits every later cache: no engine call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow

from flows.concurrency import mlx_guard, mlx_slot
from flows.interrupt import checkpoint
from flows.reporting import cast_table_artifact, emit
from flows.tasks import (
    FLOW_VERSION, RunSpec, analyze_task, configured, design_task, embedding_digest, evidence_task, get_analyzer,
    get_engine, lock_task, parse_task, pick_task, pinned_voice_task, variant_task,
)
from pipeline.keys import content_key, sha256_file


def _with_outputs(call, exists, *args, **kwargs):
    """Call a cached task; if the files its (cached) result names are gone, call it again ignoring the cache."""
    result = call(*args, **kwargs)
    if exists(result):
        return result
    return call.with_options(refresh_cache=True)(*args, **kwargs)


def _files_exist(*paths) -> bool:
    return all(p and Path(p).is_file() for p in paths)


def _lock_usable(result: dict) -> bool:
    """A cached lock result holds only while its file loads and is still the voice it was cast as: a damaged or
    replaced lock file makes the lock task run again, which rewrites it."""
    from pipeline.lock import lock_problem

    return _files_exist(result["lock_path"]) and lock_problem(result["lock_path"], result["lock_digest"]) is None


def cast_characters(screenplay, evidences: dict, spec: RunSpec, castfile=None, force: bool = False) -> dict:
    """{character: CastResult} in script order: `pipeline.casting.cast_characters` with cached task steps."""
    from pipeline.casting import cast_characters as casting_loop
    from pipeline.casting import script_delivery_counts

    return casting_loop(evidences, spec.settings, castfile, cached_steps(spec, force),
                        script_delivery_counts(screenplay, spec.settings))


def cached_steps(spec: RunSpec, force: bool = False):
    """The casting steps as cached Prefect tasks, each keyed on the content that determines its result (see the
    module docstring); a cached result whose files are gone is recomputed."""
    from pipeline.analysis.profile import CharacterProfile, profile_key
    from pipeline.casting import CastingSteps, CastResult, Pick
    from pipeline.design import Audition
    from pipeline.variants import VariantResult, variant_seeds

    s = spec.settings
    engine = get_engine(spec.engine, s, spec.models_dir)
    info = engine.info()
    engine_desc = info.identity()
    analyzer = get_analyzer(s)
    t_analyze, t_design, t_pick, t_lock, t_pinned, t_variant = (
        configured(t, spec, force) for t in (analyze_task, design_task, pick_task, lock_task, pinned_voice_task,
                                             variant_task))

    def analyze(name: str, evidence, overrides) -> CharacterProfile:
        checkpoint("while casting")  # Ctrl-C: no new casting step (flows/interrupt)
        key = profile_key(evidence, analyzer.id, overrides)
        return CharacterProfile.from_json(t_analyze(key, name, evidence, overrides, spec))

    def design(name: str, description: str, seeds: list[int]) -> list[Audition]:
        checkpoint("while casting")
        key = content_key("design", FLOW_VERSION, {
            "character": name, "description": description, "seeds": seeds, "n": s.casting.auditions,
            "text": s.casting.sample_text, "model": info.design_model, "language": s.render.language})
        made = _with_outputs(t_design, lambda r: _files_exist(*(a["path"] for a in r["auditions"])),
                             key, name, description, seeds, spec)
        return [Audition.from_json(a) for a in made["auditions"]]

    def pick(name: str, auditions, cast: dict, pinned: int | None) -> Pick:
        records = [a.to_json() for a in auditions]
        key = content_key("pick", FLOW_VERSION, {
            "auditions": [a["digest"] for a in records], "pinned": pinned, "engine": engine_desc,
            "embedding": "reference",  # candidates embedded as their lock's reference (casting.audition_embeddings)
            "cast": {k: embedding_digest(v) for k, v in sorted(cast.items())}})
        picked = t_pick(key, name, records, {k: _floats(v) for k, v in cast.items()}, pinned, spec)
        return Pick(picked["index"], picked["reason"], _vector(picked["embedding"]))

    def lock(name: str, chosen) -> tuple[str, str]:
        record = chosen.to_json()
        key = content_key("lock", FLOW_VERSION, {
            "audition": record["digest"], "ref_text": record["text"], "engine": engine_desc, "name": name,
            "language": s.render.language})
        locked = _with_outputs(t_lock, _lock_usable, key, name, record, spec)  # damaged/replaced: relocked
        return locked["lock_path"], locked["lock_digest"]

    def variant(name: str, delivery: str, lines: int, pinned: int | None, description: str, neutral,
                neutral_digest: str) -> VariantResult:
        key = content_key("variant", FLOW_VERSION, {
            "character": name, "delivery": delivery, "lines": lines, "pinned": pinned, "description": description,
            "neutral": neutral_digest, "neutral_embedding": embedding_digest(neutral),
            "seeds": variant_seeds(name, delivery, s), "delivery_settings": s.delivery.model_dump(mode="json"),
            "text": s.casting.sample_text, "model": info.design_model, "engine": engine_desc,
            "language": s.render.language})
        made = _with_outputs(t_variant, lambda v: v["lock_path"] is None or _files_exist(v["lock_path"]), key, name,
                             delivery, lines, pinned, description, None if neutral is None else _floats(neutral),
                             neutral_digest, spec)
        return VariantResult.from_json(made)

    def pinned(name: str, profile: CharacterProfile, entry):
        checkpoint("while casting")
        pin = {"lock": str(entry.lock) if entry.lock else None,
               "lock_sha": sha256_file(entry.lock) if entry.lock and Path(entry.lock).is_file() else None,
               "preset": entry.preset, "instruct": entry.instruct}
        key = content_key("pinned", FLOW_VERSION, {"pin": pin, "profile": profile.to_json(),
                                                   "engine": engine_desc, "language": s.render.language})
        item = _with_outputs(t_pinned, lambda r: _files_exist(r["result"]["lock_path"]),
                             key, name, profile.to_json(), entry, spec)
        return CastResult.from_json(item["result"]), _vector(item["embedding"])

    return CastingSteps(analyze=analyze, design=design, pick=pick, lock=lock, variant=variant, pinned=pinned,
                        release=engine.release_design)


def _floats(vector) -> list[float]:
    return np.asarray(vector, dtype=np.float32).ravel().tolist()


def _vector(values) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float32)


def cast_rows(cast: dict) -> list[dict]:
    """One flat record per character for tables and `--json`."""
    rows = []
    for name, result in cast.items():
        r = result.to_json()
        p = r["profile"]
        chosen = r["auditions"][r["chosen"]] if r.get("chosen") is not None and r.get("auditions") else None
        rows.append({
            "name": name, "gender": p.get("gender"), "age_range": p.get("age_range"), "traits": p.get("traits"),
            "summary": p.get("summary"), "description": r["description"],
            "audition": chosen["path"] if chosen else None, "audition_index": r.get("chosen"),
            "pick_reason": r["reason"], "source": r.get("source"), "extra_voice": r.get("extra_voice"),
            "lock_path": r["lock_path"], "lock_digest": r["lock_digest"],
            "variants": [{k: v.get(k) for k in ("delivery", "lines", "status", "similarity", "chosen", "reason",
                                                 "lock_path", "lock_digest")} for v in r.get("variants", ())],
        })
    return rows


def load_cast(screenplay, cast_file: str | None):
    if not cast_file:
        return None
    from pipeline.castfile import load_cast_file

    return load_cast_file(cast_file, screenplay.characters())


def make_spec(script: str, engine: str, models_dir: str | None, settings_file: str | None,
              overrides: dict[str, Any] | None) -> tuple[RunSpec, str]:
    """(RunSpec, why this engine) from the flow parameters."""
    from pipeline.config import home_dir, load_settings
    from pipeline.engines.select import resolve_engine

    settings = load_settings(settings_file, overrides or None)
    name, reason = resolve_engine(settings, models_dir, engine=None if engine in (None, "", "auto") else engine)
    script_name = Path(script).stem
    return RunSpec(settings=settings, engine=name, models_dir=models_dir, home=str(home_dir()),
                   script_name=script_name), reason


@flow(name="cast-script", log_prints=False)
def cast_flow(script: str, engine: str = "auto", models_dir: str | None = None, settings_file: str | None = None,
              overrides: dict[str, Any] | None = None, cast_file: str | None = None, force: bool = False) -> dict:
    """Cast every speaking character of SCRIPT; returns {"engine", "reason", "characters": [rows]}."""
    spec, reason = make_spec(script, engine, models_dir, settings_file, overrides)
    emit("engine", name=spec.engine, reason=reason)
    screenplay = parse_task(os.fspath(script))
    evidences = evidence_task(screenplay)
    castfile = load_cast(screenplay, cast_file)
    mlx_guard(spec)  # apple-silicon deployments: no real models without Metal (pipeline.engines.guard)
    with mlx_slot(spec):  # one GPU user per server (flows/concurrency)
        cast = cast_characters(screenplay, evidences, spec, castfile, force=force)
    rows = cast_rows(cast)
    cast_table_artifact(spec.script_name, rows)
    return {"engine": spec.engine, "reason": reason, "characters": rows}
