"""The `cast` flow: parse → evidence → per character analyze → design → pick → lock, each a cached task.

`cast_characters` holds the wiring and is shared with the render flow (which calls it inside its own run — a
subflow would cost ≈1.2 s for nothing). It follows `pipeline.casting.cast_script` step by step and shares its
pieces (`casting_order`, `character_description`, `extra_result`): leads first (so minor voices are picked to differ
from them), then the extras pool, then extras share pool voices.

Cache keys: analyze = `analysis.profile_key` (evidence digest + analyzer + overrides); design = description +
seeds + sample text + design model; pick = audition digests + digests of the voices already cast + pin; lock =
chosen audition digest + reference text + engine/model ids + name. Editing one line changes that character's
evidence, so its analysis re-runs — but an unchanged description hits every later cache: no engine call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow

from flows.concurrency import mlx_guard, mlx_slot
from flows.reporting import cast_table_artifact, emit
from flows.tasks import (
    FLOW_VERSION, RunSpec, analyze_task, configured, design_task, embedding_digest, evidence_task, get_analyzer,
    get_engine, lock_task, parse_task, pick_task, pinned_voice_task,
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


def cast_characters(screenplay, evidences: dict, spec: RunSpec, castfile=None, force: bool = False) -> dict:
    """{character: {"result": CastResult JSON, "embedding": list | None}} in script order (see module doc)."""
    from pipeline.analysis.profile import CharacterProfile
    from pipeline.casting import (
        CastResult, assign_extras, audition_seeds, casting_order, character_description, check_audition_pin,
        extra_result, pool_profile, pool_voice_name,
    )
    from pipeline.castfile import EMPTY_CAST
    from pipeline.design import design_model_id

    s = spec.settings
    castfile = castfile or EMPTY_CAST
    engine = get_engine(spec.engine, s, spec.models_dir)
    engine_desc = engine.describe()
    analyzer = get_analyzer(s)
    t_analyze, t_design, t_pick, t_lock, t_pinned = (
        configured(t, spec, force) for t in (analyze_task, design_task, pick_task, lock_task, pinned_voice_task))

    from pipeline.analysis.profile import profile_key

    profiles: dict[str, CharacterProfile] = {}
    for name, ev in evidences.items():
        overrides = castfile.entry(name).overrides()
        key = profile_key(ev, analyzer.id, overrides)
        profiles[name] = CharacterProfile.from_json(t_analyze(key, name, ev, overrides, spec))

    extras = assign_extras(evidences, castfile, s, profiles)
    order = casting_order(evidences, extras)
    cast: dict[str, dict] = {}
    embeddings: dict[str, list[float]] = {}

    def designed(name: str, profile: CharacterProfile, entry) -> dict:
        if entry is not None:
            check_audition_pin(entry, s.casting.auditions)  # a bad pin fails before any engine call
        description = character_description(profile, entry)
        seeds = audition_seeds(profile.name, s, entry)
        dkey = content_key("design", FLOW_VERSION, {
            "character": name, "description": description, "seeds": seeds, "n": s.casting.auditions,
            "text": s.casting.sample_text, "model": design_model_id(engine), "language": s.render.language})
        design = _with_outputs(t_design, lambda r: _files_exist(*(a["path"] for a in r["auditions"])),
                               dkey, name, description, seeds, spec)
        auditions = design["auditions"]
        pinned = entry.audition if entry is not None else None
        pkey = content_key("pick", FLOW_VERSION, {
            "auditions": [a["digest"] for a in auditions], "pinned": pinned, "engine": engine_desc,
            "embedding": "reference",  # candidates embedded as their lock's reference (casting.audition_embeddings)
            "cast": {k: embedding_digest(v) for k, v in sorted(embeddings.items())}})
        picked = t_pick(pkey, name, auditions, dict(embeddings), pinned, spec)
        chosen = auditions[picked["index"]]
        lkey = content_key("lock", FLOW_VERSION, {
            "audition": chosen["digest"], "ref_text": chosen["text"], "engine": engine_desc, "name": name,
            "language": s.render.language})
        locked = _with_outputs(t_lock, lambda r: _files_exist(r["lock_path"]), lkey, name, chosen, spec)
        result = CastResult(
            name=profile.name, profile=profile, description=description,
            auditions=tuple(_audition(a) for a in auditions), chosen=picked["index"], reason=picked["reason"],
            lock_path=locked["lock_path"], lock_digest=locked["lock_digest"])
        return {"result": result.to_json(), "embedding": picked["embedding"]}

    for name in order:
        entry = castfile.entry(name)
        if entry.lock is not None or entry.preset is not None:
            pin = {"lock": str(entry.lock) if entry.lock else None,
                   "lock_sha": sha256_file(entry.lock) if entry.lock and Path(entry.lock).is_file() else None,
                   "preset": entry.preset, "instruct": entry.instruct}
            key = content_key("pinned", FLOW_VERSION, {"pin": pin, "profile": profiles[name].to_json(),
                                                       "engine": engine_desc, "language": s.render.language})
            item = _with_outputs(t_pinned, lambda r: _files_exist(r["result"]["lock_path"]),
                                 key, name, profiles[name].to_json(), entry, spec)
        else:
            item = designed(name, profiles[name], entry)
        cast[name] = item
        if item["embedding"] is not None:
            embeddings[name] = item["embedding"]

    pool: dict[int, dict] = {}
    for slot in sorted(set(extras.values())):
        profile = pool_profile(slot)
        pool[slot] = designed(pool_voice_name(slot), profile, None)
        if pool[slot]["embedding"] is not None:
            embeddings[profile.name] = pool[slot]["embedding"]
    for name, slot in extras.items():
        result = extra_result(CastResult.from_json(pool[slot]["result"]), name, profiles[name], evidences[name],
                              castfile, s)
        cast[name] = {"result": result.to_json(), "embedding": pool[slot]["embedding"]}
    engine.release_design()
    return {name: cast[name] for name in evidences}


def _audition(data: dict):
    from pipeline.design import Audition

    return Audition.from_json(data)


def cast_rows(cast: dict) -> list[dict]:
    """One flat record per character for tables and `--json`."""
    rows = []
    for name, item in cast.items():
        r = item["result"]
        p = r["profile"]
        chosen = r["auditions"][r["chosen"]] if r.get("chosen") is not None and r.get("auditions") else None
        rows.append({
            "name": name, "gender": p.get("gender"), "age_range": p.get("age_range"), "traits": p.get("traits"),
            "summary": p.get("summary"), "description": r["description"],
            "audition": chosen["path"] if chosen else None, "audition_index": r.get("chosen"),
            "pick_reason": r["reason"], "source": r.get("source"), "extra_voice": r.get("extra_voice"),
            "lock_path": r["lock_path"], "lock_digest": r["lock_digest"],
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
