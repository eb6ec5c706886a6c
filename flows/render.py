"""The `render` flow: cast (cached) → per scene: plan, render missing lines through the LineStore, mix → master,
cue sheet, subtitles; always a `render-report.json` in the output folder.

Rerun semantics come from content keys: a scene task is cached on the scene key (its ordered line jobs, the
assembly settings and its output path), lines on their line keys in the LineStore. Running again executes nothing
that is done; editing one line changes one line key, so one engine call and one scene re-mix; a failed scene fails
only its task — the others complete — and the flow ends Failed naming every failed scene and line with its reason.
`scenes=[...]` renders a subset (no master); `force=True` ignores every task cache (`refresh_cache`), while the
LineStore still holds the lines already rendered under the same keys.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.concurrency import mlx_guard, mlx_slot
from flows.cast import _with_outputs, cast_characters, cast_rows, load_cast, make_spec
from flows.reporting import ProgressArtifact, cast_table_artifact, emit, outputs_artifact
from flows.tasks import (
    FLOW_VERSION, RunSpec, SceneRenderError, configured, evidence_task, file_stat, get_engine, master_task,
    parse_task, render_scene_task,
)
from pipeline.errors import RenderError, SettingsError
from pipeline.keys import content_key
from pipeline.render_report import REPORT_NAME, CastRecord, Counts, RenderReport, SceneRecord, save_render_report

def assembly_payload(settings) -> dict:
    """Settings that change a scene mix or the master (and so their keys)."""
    return {"pauses": settings.pauses.model_dump(mode="json"), "loudness": settings.loudness.model_dump(mode="json"),
            "output": settings.output.model_dump(mode="json")}


def scene_out_path(out_dir: Path, label: str, fmt: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
    return out_dir / "scenes" / f"scene-{safe.zfill(3)}.{fmt}"


def _scene_record(label, index, heading, jobs) -> dict:
    return {"scene": label, "index": index, "heading": heading, "status": "pending", "cached": False,
            "path": None, "duration": 0.0, "lines": len(jobs), "rendered": 0, "reused": 0, "failed": 0,
            "failed_lines": []}


def _run_scene(t_scene, spec: RunSpec, screenplay, index: int, jobs, locks: dict, out_dir: Path,
               force: bool = False) -> dict:
    """Run one scene task and turn its state into a report record (never raises for a scene failure)."""
    from pipeline.render import scene_label

    s = spec.settings
    label = scene_label(screenplay, index)
    heading = screenplay.scenes[index].heading
    record = _scene_record(label, index, heading, jobs)
    out_path = scene_out_path(out_dir, label, s.output.format)
    lines = [j.to_json() for j in jobs]
    scene_key = content_key("scene", FLOW_VERSION, {"lines": lines, "assembly": assembly_payload(s),
                                                    "out": str(out_path)})
    voices = {j.voice_digest for j in jobs if j.voice_digest}
    args = (scene_key, {"label": label, "index": index, "heading": heading}, lines,
            {d: locks[d] for d in voices if d in locks}, str(out_path), spec, force)
    state = t_scene(*args, return_state=True)
    if state.is_completed() and file_stat(state.result()["mix"]["path"]) != state.result().get("file_stat"):
        state = t_scene.with_options(refresh_cache=True)(*args, return_state=True)  # file gone or replaced: re-mix
    if state.is_completed():
        result = state.result()
        cached = state.name == "Cached"
        if cached:
            emit("scene_cached", scene=label, lines=len(jobs))
        record.update(status="done", cached=cached, path=result["mix"]["path"], duration=result["mix"]["duration"],
                      rendered=0 if cached else len(result["rendered"]),
                      reused=len(jobs) if cached else len(result["reused"]), mix=result["mix"])
        return record
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, SceneRenderError):
        record.update(status="failed", rendered=exc.rendered, reused=exc.reused, failed=len(exc.failures),
                      failed_lines=exc.failures)
    else:
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else (state.message or "failed")
        record.update(status="failed", failed=len(jobs), error=reason, failed_lines=[
            {"scene": label, "key": j.key, "character": j.character, "source_line": j.source_line, "text": j.text,
             "reason": reason} for j in jobs])
        emit("scene_done", scene=label, status="failed")
    return record


def _failure_message(scenes: list[dict]) -> str:
    parts = []
    for s in scenes:
        if s["status"] != "failed":
            continue
        lines = "; ".join(f"line {f.get('source_line')} {f.get('character')} “{f.get('text')}”: {f.get('reason')}"
                          for f in s["failed_lines"][:10])
        more = f" (+{len(s['failed_lines']) - 10} more)" if len(s["failed_lines"]) > 10 else ""
        parts.append(f"scene {s['scene']} ({s['heading'] or 'no heading'}): {lines}{more}")
    done = [s["scene"] for s in scenes if s["status"] == "done"]
    return (f"{len(parts)} scene(s) failed — " + " | ".join(parts) +
            f". Scenes done: {', '.join(done) or 'none'}. Run the same command again to retry only what failed.")


@flow(name="render-script", log_prints=False)
def render_flow(script: str, out_dir: str, engine: str = "auto", models_dir: str | None = None,
                settings_file: str | None = None, overrides: dict[str, Any] | None = None,
                cast_file: str | None = None, scenes: list[str | int] | None = None, force: bool = False,
                report_name: str = REPORT_NAME) -> dict:
    """Render SCRIPT into OUT_DIR; returns the render report (also written to OUT_DIR/render-report.json).

    Raises RenderError (the flow ends Failed) when any line failed, naming each failed scene and line."""
    from pipeline.render import plan_line_jobs, select_scenes, spoken_scenes

    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    logger = get_run_logger()
    out = Path(out_dir).expanduser().resolve()
    spec, reason = make_spec(script, engine, models_dir, settings_file, overrides)
    s = spec.settings
    emit("engine", name=spec.engine, reason=reason)
    logger.info("engine %s: %s", spec.engine, reason)
    mlx_guard(spec)  # apple-silicon deployments: no real models without Metal (pipeline.engines.guard)

    try:
        screenplay = parse_task(os.fspath(script))
        try:
            chosen = select_scenes(screenplay, scenes)
        except ValueError as e:
            raise SettingsError(f"--scenes: {e}.") from None
        evidences = evidence_task(screenplay)
        castfile = load_cast(screenplay, cast_file)
        with mlx_slot(spec):  # one GPU user per server: held while casting and rendering (flows/concurrency)
            cast = cast_characters(screenplay, evidences, spec, castfile, force=force)
            cast_table_artifact(spec.script_name, cast_rows(cast))

            eng = get_engine(spec.engine, s, spec.models_dir)
            engine_desc = eng.info().identity()
            voices = {name: result.lock_digest for name, result in cast.items()}
            locks = {result.lock_digest: result.lock_path for result in cast.values()}
            jobs = plan_line_jobs(screenplay, voices, engine_desc, s)
            by_scene: dict[int, list] = {}
            for j in jobs:
                by_scene.setdefault(j.scene_index, []).append(j)
            selected = [i for i in chosen if i in by_scene]
            full = set(selected) == set(i for i in spoken_scenes(screenplay) if i in by_scene)
            emit("plan", scenes=len(selected), lines=sum(len(by_scene[i]) for i in selected))

            progress = ProgressArtifact(len(selected), f"Rendering {spec.script_name}: {len(selected)} scenes")
            t_scene = configured(render_scene_task, spec, force)
            records = []
            for index in selected:
                records.append(_run_scene(t_scene, spec, screenplay, index, by_scene[index], locks, out, force))
                progress.advance()
            progress.advance(0, force=True)
    except Exception as e:  # the run stops before any scene result: still leave a report saying why
        save_render_report(out / report_name, RenderReport(
            script=str(Path(script).resolve()), script_name=spec.script_name, status="failed",
            error=f"{type(e).__name__}: {e}", engine={"name": spec.engine, "reason": reason},
            started=started_at, wall_seconds=round(time.perf_counter() - started, 3)))
        raise

    failed = [r for r in records if r["status"] == "failed"]
    outputs: dict[str, str] = {}
    master_note = master_error = None
    if failed:
        master_note = "master not built: some scenes failed"
    elif not full:
        master_note = "master not built: only some scenes were rendered (--scenes)"
    elif not s.output.master:
        master_note = "master not built: output.master = false"
    elif not records:
        master_note = "nothing to render: the script has no dialogue"
    else:
        mixes = records
        title = screenplay.title_page.get("title") or spec.script_name
        mkey = content_key("master", FLOW_VERSION, {
            "scenes": [r["mix"] for r in mixes], "assembly": assembly_payload(s), "out": str(out), "title": title})
        t_master = configured(master_task, spec, force)
        payload = [{"mix": r["mix"]} for r in mixes]
        try:
            master = _with_outputs(t_master, lambda r: all(Path(p).is_file() for p in r["outputs"].values()),
                                   mkey, payload, str(out), title, spec)
            outputs = master["outputs"]
            emit("master", outputs=outputs)
        except Exception as e:  # scenes are done and kept; the report says why the master is missing
            master_error = f"master failed: {type(e).__name__}: {e}"
            master_note = master_error

    scene_records = [SceneRecord.model_validate({k: v for k, v in r.items() if k != "mix"}) for r in records]
    counts = Counts(lines=sum(r.lines for r in scene_records), rendered=sum(r.rendered for r in scene_records),
                    reused=sum(r.reused for r in scene_records), failed=sum(r.failed for r in scene_records))
    typed = RenderReport(
        script=str(Path(script).resolve()), script_name=spec.script_name,
        title=screenplay.title_page.get("title"),
        engine={**engine_desc, "name": spec.engine, "reason": reason},
        counts=counts,
        status="failed" if failed or master_error else "completed",
        scenes=scene_records,
        failed_lines=[f for r in scene_records for f in r.failed_lines],
        outputs=outputs, master_note=master_note,
        cast={name: CastRecord(lock_path=result.lock_path, lock_digest=result.lock_digest)
              for name, result in cast.items()},
        audio_seconds=round(sum(r.duration for r in scene_records), 3),
        started=started_at, wall_seconds=round(time.perf_counter() - started, 3),
        line_store=str(spec.store_root), force=force, scenes_requested=list(scenes or []),
    )
    save_render_report(out / report_name, typed)  # farm shards pass their own name (flows/farm.py)
    report = typed.to_json()
    outputs_artifact(report)
    emit("done", report=report)
    if failed:
        raise RenderError(_failure_message(records))
    if master_error:
        raise RenderError(f"{master_error}. The scene files are complete in {out / 'scenes'}; fix the cause and run "
                          "the same command again (only the master is rebuilt).")
    return report
