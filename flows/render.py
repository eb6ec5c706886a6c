"""The `render` flow: cast (cached) → plan every line of the run → render the missing ones in chunks through one
engine session each (continuous batching across scenes and voices) → mix each scene as soon as its lines are stored
→ master, cue sheet, subtitles; always a `render-report.json` in the output folder.

Rerun semantics come from content keys: lines live under their line keys in the LineStore (the render tasks' cache:
only missing lines are sent to them), a scene mix task is cached on the scene key (its ordered line jobs, the
assembly settings and its output path). Running again executes nothing that is done; editing one line changes one
line key, so one engine call and one scene re-mix; a failed line fails only its scene — the others complete — and
the flow ends Failed naming every failed scene and line with its reason.
`scenes=[...]` renders a subset (no master); `force=True` ignores every task cache (`refresh_cache`), while the
LineStore still holds the lines already rendered under the same keys.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.concurrency import mlx_guard, mlx_slot
from flows.interrupt import RenderInterrupted, requested
from flows.cast import _with_outputs, cast_characters, cast_rows, load_cast, make_spec
from flows.reporting import ProgressArtifact, cast_table_artifact, emit, listen, outputs_artifact
from flows.scene_mixer import SceneMixer
from flows.states import state_result
from flows.tasks import (
    FLOW_VERSION, ChunkRenderError, RunSpec, configured, evidence_task, files_intact, get_engine,
    master_task, mix_scene_task, parse_task, release_chunk_locks, render_lines_task,
)
from pipeline.errors import RenderError, SettingsError
from pipeline.files import FolderBusyError, file_stat, folder_lock, sweep_temps
from pipeline.fountain import plain_title
from pipeline.keys import content_key
from pipeline.render_report import (
    REPORT_NAME, CastRecord, Counts, LexiconRecord, NarrationRecord, RenderReport, SceneRecord, Timings,
    VariantRecord, save_render_report,
)
from pipeline.review import CAST_RESULTS_NAME, write_cast_results
from pipeline.store import LineStore


def assembly_payload(settings) -> dict:
    """Settings that change a scene mix or the master (and so their keys)."""
    return {"pauses": settings.pauses.model_dump(mode="json"), "loudness": settings.loudness.model_dump(mode="json"),
            "output": settings.output.model_dump(mode="json"), "narration": settings.narration.model_dump(mode="json"),
            "offscreen": settings.offscreen.model_dump(mode="json"), "mix": "trim-pieces-1"}


def _scene_intact(result: dict) -> bool:
    """The scene file a cached result names is still the file it wrote (size, mtime, size and sha256)."""
    return file_stat(result["mix"]["path"]) == result.get("file_stat") and files_intact(result.get("files"))


def scene_out_path(out_dir: Path, label: str, fmt: str) -> Path:
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in label)
    if len(safe) > 40 or safe != label or ".." in safe:  # long or odd scene numbers: bounded, and distinct by a digest
        import hashlib

        safe = f"{safe[:31]}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"
    return out_dir / "scenes" / f"scene-{safe.zfill(3)}.{fmt}"


def _scene_record(label, index, heading, jobs) -> dict:
    return {"scene": label, "index": index, "heading": heading, "status": "pending", "cached": False,
            "path": None, "duration": 0.0, "lines": len(jobs), "rendered": 0, "reused": 0, "failed": 0,
            "failed_lines": []}


def _mix_scene(t_mix, spec: RunSpec, record: dict, jobs, out_dir: Path) -> None:
    """Run one scene's mix task (cached on its scene key) and fill its report record (never raises)."""
    s = spec.settings
    label = record["scene"]
    out_path = scene_out_path(out_dir, label, s.output.format)
    lines = [j.to_json() for j in jobs]
    scene_key = content_key("scene", FLOW_VERSION, {"lines": lines, "assembly": assembly_payload(s),
                                                    "out": str(out_path)})
    args = (scene_key, {"label": label, "index": record["index"], "heading": record["heading"]}, lines,
            str(out_path), spec)
    state = t_mix(*args, return_state=True)
    if state.is_completed() and not _scene_intact(state_result(state)):
        state = t_mix.with_options(refresh_cache=True)(*args, return_state=True)  # file gone or damaged: re-mix
    if state.is_completed():
        result = state_result(state)
        cached = state.name == "Cached"
        emit("scene_cached" if cached else "scene_done", scene=label, lines=len(jobs), status="done")
        record.update(status="done", cached=cached, path=result["mix"]["path"], duration=result["mix"]["duration"],
                      mix=result["mix"], timings={} if cached else result.get("timings", {}),
                      loudness=result["mix"].get("loudness"), cues=scene_cues(result["mix"], jobs))
        return
    exc = state_result(state, raise_on_failure=False)
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else (state.message or "failed")
    record["error"] = f"scene mix failed: {reason}"
    _fail_scene(record, [{"scene": label, "key": j.key, "character": j.character, "source_line": j.source_line,
                          "text": j.text, "reason": f"scene mix failed: {reason}"} for j in jobs])


def _fail_scene(record: dict, failures: list[dict]) -> None:
    record.update(status="failed", failed=len(failures), failed_lines=failures)
    emit("scene_done", scene=record["scene"], status="failed")


def between_chunks(done: int, total: int) -> None:
    """The point between two render chunks: every line of the chunks so far is stored, no engine work is in
    flight. Progress is reported here."""
    emit("chunk", done=done, total=total)


@dataclass(frozen=True)
class ChunkOutcome:
    """What one render task did: keys rendered, failures by key, keys stopped by a Ctrl-C, engine figures, and keys
    found already stored when the task ran (another render, e.g. a farm worker, stored them meanwhile)."""

    rendered: set[str]
    failed: dict[str, dict]
    stopped: set[str]
    engine: dict | None
    reused: frozenset[str] = frozenset()


def _chunk_outcome(state, chunk) -> ChunkOutcome:
    if state.is_completed():
        result = state_result(state)
        return ChunkOutcome(set(result["rendered"]), {}, set(result.get("stopped", ())), result["engine"],
                            frozenset(result.get("reused", ())))
    exc = state_result(state, raise_on_failure=False)
    if isinstance(exc, ChunkRenderError):
        return ChunkOutcome(set(exc.rendered), {f["key"]: f for f in exc.failures}, set(exc.stopped), exc.engine,
                            frozenset(exc.reused))
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else (state.message or "failed")
    return ChunkOutcome(set(), {j.key: {"key": j.key, "character": j.character, "scene_index": j.scene_index,
                                        "source_line": j.source_line, "text": j.text,
                                        "reason": f"render task failed: {reason}"} for j in chunk}, set(), None)


def _line_failure(record: dict, job, reason: str) -> dict:
    return {"scene": record["scene"], "key": job.key, "character": job.character, "source_line": job.source_line,
            "text": job.text, "reason": reason}


@dataclass
class _Settling:
    """Which lines each scene still waits for, the failures found so far, and which scenes were handed to the mixer.
    The line events of a render task (flows/reporting) settle a scene as soon as its last line is stored, before
    the task returns, so its mix overlaps the rest of the chunk."""

    waiting: dict[int, set[str]]
    failures: dict[int, list[dict]]
    handed: set[int] = field(default_factory=set)
    stored: dict[str, str] = field(default_factory=dict)  # key -> "rendered" | "reused", from this chunk's events
    scene_of: dict[str, list[int]] = field(default_factory=dict)

    def done(self, i: int) -> bool:
        return not self.waiting[i] and i not in self.handed


def render_scenes(spec: RunSpec, screenplay, by_scene: dict, selected: list[int], locks: dict, out: Path,
                  force: bool, progress) -> tuple[list[dict], dict, dict]:
    """Render every missing line of the selected scenes in chunks (one engine session each), mixing each scene as
    soon as all its lines are stored (flows/scene_mixer: beside the engine when `render.mix_while_rendering`).
    Returns the scene records (script order), the run's engine figures and the stage's clock: seconds inside
    render tasks ("engine") and seconds the stage waited on mixes ("mix_wait")."""
    from pipeline.engines.session import SessionStats
    from pipeline.render import plan_chunks, scene_label
    from pipeline.store import LineStore

    s = spec.settings
    store = LineStore(spec.store_root)
    records = {i: _scene_record(scene_label(screenplay, i), i, screenplay.scenes[i].heading, by_scene[i])
               for i in selected}
    todo = []
    state = _Settling(waiting={}, failures={i: [] for i in selected})
    for i in selected:
        missing = list(by_scene[i]) if force else [j for j in by_scene[i] if not store.has(j.key)]
        records[i]["repaired_lines"] = [  # damaged in the store (store.has removed them): rendered again, reported
            {"key": j.key, "character": j.character, "source_line": j.source_line, "reason": store.damaged[j.key]}
            for j in missing if j.key in store.damaged]
        state.waiting[i] = {j.key for j in missing}
        for j in missing:
            state.scene_of.setdefault(j.key, []).append(i)
        records[i]["reused"] = len(by_scene[i]) - len(missing)
        todo.extend(missing)
        for j in by_scene[i]:
            if j.key not in state.waiting[i]:
                emit("line", key=j.key, character=j.character, status="reused", scene_index=i)
    t_mix = configured(mix_scene_task, spec, force)

    def mix(i: int) -> None:
        if requested():  # Ctrl-C: no new mix; the scene stays "pending" and its stored lines wait for the rerun
            return
        if state.failures[i]:
            _fail_scene(records[i], state.failures[i])
        else:
            _mix_scene(t_mix, spec, records[i], by_scene[i], out)

    def settle(i: int) -> None:
        if state.done(i):
            state.handed.add(i)
            mixer.submit(i)

    def on_event(event: str, payload: dict) -> None:  # a line stored inside the running render task
        key = payload.get("key")
        if event != "line" or payload.get("status") not in ("rendered", "reused") or key not in state.scene_of:
            return
        with lock:
            state.stored[key] = payload["status"]
            for i in state.scene_of[key]:
                state.waiting[i].discard(key)
                settle(i)

    lock = threading.Lock()  # line events may come from an engine's own thread
    clock = {"engine": 0.0}
    stats = SessionStats(batch_size=s.render.batch_size)
    chunks = plan_chunks(todo, s.render.chunk_lines)
    t_render = configured(render_lines_task, spec)
    with SceneMixer(mix, background=s.render.mix_while_rendering) as mixer:
        for i in selected:
            settle(i)
        progress.advance(sum(r["reused"] for r in records.values()), force=True)
        try:
            for n, chunk in enumerate(chunks, 1):
                voices = {j.voice_digest for j in chunk if j.voice_digest}
                started = time.perf_counter()
                with listen(on_event) if mixer.background else contextlib.nullcontext():
                    task_state = t_render(f"{n}/{len(chunks)}", [j.to_json() for j in chunk],
                                          {d: locks[d] for d in voices if d in locks}, spec, force, return_state=True)
                clock["engine"] += time.perf_counter() - started
                outcome = _chunk_outcome(task_state, chunk)
                if outcome.engine:
                    stats.add(SessionStats.from_json(outcome.engine))
                with lock:
                    _count_chunk(chunk, outcome, state, records)
                    for i in dict.fromkeys(j.scene_index for j in chunk):
                        settle(i)
                progress.advance(len(chunk) - len(outcome.stopped), force=True)
                between_chunks(n, len(chunks))
                if requested():  # Ctrl-C: every line finished so far is stored; start no new chunk (flows/interrupt)
                    break
        finally:  # the chunks are done, or one raised (Ctrl-C): their voices' reference audio goes
            release_chunk_locks()
        mixer.finish()
    clock["mix_wait"] = mixer.waited
    return [records[i] for i in selected], stats.to_json(), clock


def _count_chunk(chunk, outcome: ChunkOutcome, state: _Settling, records: dict) -> None:
    """Count each line of a finished chunk in its scene's record: rendered, reused or failed. A line the task's
    events said was stored counts as stored, whatever the task's state (its scene may be mixed already)."""
    for j in chunk:
        i = j.scene_index
        seen = state.stored.pop(j.key, None)
        if seen is None and j.key in outcome.stopped:  # Ctrl-C inside the chunk: not rendered, not failed
            continue
        if seen == "rendered" or (seen is None and j.key in outcome.rendered):
            records[i]["rendered"] += 1
        elif seen == "reused" or j.key in outcome.reused:
            records[i]["reused"] += 1
        elif j.key in outcome.failed:
            state.failures[i].append({**outcome.failed[j.key], "scene": records[i]["scene"]})
        else:
            state.failures[i].append(_line_failure(records[i], j, "the render task returned no outcome for this line"))
        state.waiting[i].discard(j.key)


def run_lexicon(castfile, lexicon_file: str | None):
    """The run's lexicon: the cast file's [lexicon], then `--lexicon FILE` on top."""
    from pipeline.lexicon import EMPTY_LEXICON, load_lexicon

    lexicon = castfile.lexicon if castfile is not None else EMPTY_LEXICON
    return lexicon.merged(load_lexicon(lexicon_file)) if lexicon_file else lexicon


def lexicon_report(lexicon, jobs) -> LexiconRecord:
    """Entries, their sources, and the entries that matched no spoken line (reported, not an error)."""
    if not lexicon:
        return LexiconRecord()
    written = [j.line_text for j in jobs if j.piece == 0]
    return LexiconRecord(entries=len(lexicon.entries), sources=list(lexicon.sources), unused=lexicon.unused(written),
                         respelled_lines=sum(1 for j in jobs if j.piece == 0 and j.cue_text is not None
                                             and lexicon.apply(j.cue_text) != j.cue_text))


def _timings(wall: float, casting: float, clock: dict, records: list[dict], master: float) -> dict:
    """Where this run's time went, in seconds: casting, engine (inside render tasks), mixing (the wall spent on
    scene mixes: mixed between engine calls, or waited for once the engine was done), master (master files and
    deliverables) and other (parsing, planning, orchestration); these five add up to the wall. Not in that sum:
    mixing_overlapped, the mixing done beside the engine at no cost in wall time. Cached scenes cost nothing."""
    total = sum(r.get("timings", {}).get("mixing", 0.0) for r in records)
    mixing = min(clock.get("mix_wait", 0.0), total)
    engine = clock.get("engine", 0.0)
    other = max(0.0, wall - casting - engine - mixing - master)
    return {k: round(v, 3) for k, v in
            {"casting": casting, "engine": engine, "mixing": mixing, "master": master, "other": other,
             "mixing_overlapped": max(0.0, total - mixing)}.items()}


def cast_record(result) -> CastRecord:
    """The render report's record of one character's voice (a CastResult) and its locked delivery variants."""
    variants = {v.delivery: VariantRecord(lock_path=v.lock_path, lock_digest=v.lock_digest, similarity=v.similarity)
                for v in result.variants if v.locked}
    return CastRecord(lock_path=result.lock_path, lock_digest=result.lock_digest, variants=variants)


def cast_voices(cast: dict) -> tuple[dict, dict, dict]:
    """(voices {character: neutral digest}, variants {character: {delivery: digest}}, locks {digest: path}) of
    the cast results, for planning and rendering."""
    from pipeline.variants import variant_voices

    voices = {name: result.lock_digest for name, result in cast.items()}
    locks = {result.lock_digest: result.lock_path for result in cast.values()}
    locks.update({v.lock_digest: v.lock_path for result in cast.values() for v in result.variants if v.locked})
    return voices, variant_voices({name: result.variants for name, result in cast.items()}), locks


def scene_cues(mix: dict, jobs) -> list[dict]:
    """The scene's lines as placed in its file (seconds from the scene start, ms precision) with script lines."""
    source = {j.key: j.source_line for j in jobs}
    return [{"key": c["key"], "character": c["character"], "text": c["text"], "extension": c.get("extension"),
             "start": round(c["start_sample"] / c["sample_rate"], 3), "end": round(c["end_sample"] / c["sample_rate"], 3),
             "source_line": source.get(c["key"])} for c in mix.get("cues", [])]


def rerun_args(script: str, out_dir: str, engine: str, models_dir: str | None, settings_file: str | None,
               overrides: dict[str, Any] | None, cast_file: str | None, scenes: list | None) -> list[str]:
    """The `readthrough render` command line that runs this render again (for the review page)."""
    args = ["readthrough", "render", script, "-o", out_dir, "--engine", engine]
    for flag, value in (("--models", models_dir), ("--settings", settings_file), ("--cast", cast_file)):
        if value:
            args += [flag, value]
    if scenes:
        args += ["--scenes", ",".join(str(x) for x in scenes)]
    if (overrides or {}).get("render.quality"):
        args += ["--quality", str(overrides["render.quality"])]
    return args


def write_page(out: Path) -> Path | None:
    """OUT/index.html (pipeline.review); a page that cannot be drawn never fails the render."""
    from pipeline.review import write_review

    try:
        return write_review(out)
    except Exception:  # noqa: BLE001
        get_run_logger().warning("could not write the review page %s", out / "index.html", exc_info=True)
        return None


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


def scene_record(record: dict) -> SceneRecord:
    """The report's record of one scene, from the flow's working record (less its mix and timings)."""
    return SceneRecord.model_validate({k: v for k, v in record.items() if k not in ("mix", "timings")})


def _interrupted(path: Path, spec: RunSpec, script, screenplay, reason, engine_desc, records, pending: list[int],
                 started: float, started_at: str):
    """Ctrl-C: the report says what is done (finished scenes, lines in the store) and what is left; then raise."""
    from pipeline.render import scene_label

    done = [scene_record(r) for r in records]
    left = [SceneRecord(scene=scene_label(screenplay, i), index=i, heading=screenplay.scenes[i].heading)
            for i in pending]
    finished = [r for r in done if r.status == "done"]
    save_render_report(path, RenderReport(
        script=str(Path(script).resolve()), script_name=spec.script_name, status="interrupted",
        title=plain_title(screenplay.title_page.get("title")),
        engine={**engine_desc, "name": spec.engine, "reason": reason},
        counts=Counts(lines=sum(r.lines for r in done), rendered=sum(r.rendered for r in done),
                      reused=sum(r.reused for r in done), failed=sum(r.failed for r in done)),
        scenes=done + left, failed_lines=[f for r in done for f in r.failed_lines],
        master_note="master not built: the render was interrupted",
        audio_seconds=round(sum(r.duration for r in finished), 3), started=started_at,
        wall_seconds=round(time.perf_counter() - started, 3), line_store=str(spec.store_root)))
    raise RenderInterrupted(f"Interrupted: {len(finished)} of {len(done) + len(left)} scene(s) done; the lines "
                            "rendered so far are kept.")


@flow(name="render-script", log_prints=False)
def render_flow(script: str, out_dir: str, engine: str = "auto", models_dir: str | None = None,
                settings_file: str | None = None, overrides: dict[str, Any] | None = None,
                cast_file: str | None = None, scenes: list[str | int] | None = None, force: bool = False,
                report_name: str = REPORT_NAME, lexicon_file: str | None = None,
                command: list[str] | None = None) -> dict:
    """Render SCRIPT into OUT_DIR; returns the render report (also written to OUT_DIR/render-report.json).

    What is read: every dialogue line, and the narration of `narration.mode` (default "action": scene headings
    and action) in the narrator's voice; words of the lexicon (the cast file's [lexicon], then `lexicon_file`)
    are respelled first. Raises RenderError (the flow ends Failed) when any line failed, naming each failed scene
    and line. One render per output folder at a time: a second one into the same folder stops at once saying another
    render is running (renders into different folders run side by side and share the line store; farm shards, each
    with its own report name, share a folder).
    `command`: the command line that started it (shown on the review page, OUT/index.html, to rerun)."""
    out = Path(out_dir).expanduser().resolve()
    try:
        with folder_lock(out, "render", name=report_name):  # farm shards write their own reports side by side
            for folder in (out, out / "scenes"):  # temp files of a killed render: our names, dead writers only
                sweep_temps(folder, recursive=False)
            return _render(script, out_dir, engine, models_dir, settings_file, overrides, cast_file, scenes, force,
                           report_name, lexicon_file, command)
    except FolderBusyError as e:
        raise RenderError(str(e)) from None


def _render(script: str, out_dir: str, engine: str, models_dir: str | None, settings_file: str | None,
            overrides: dict[str, Any] | None, cast_file: str | None, scenes: list[str | int] | None, force: bool,
            report_name: str, lexicon_file: str | None = None,
            command: list[str] | None = None) -> dict:
    from pipeline.render import plan_line_jobs, select_scenes

    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    logger = get_run_logger()
    out = Path(out_dir).expanduser().resolve()
    spec, reason = make_spec(script, engine, models_dir, settings_file, overrides)
    s = spec.settings
    command = command or rerun_args(os.fspath(script), os.fspath(out_dir), spec.engine, models_dir, settings_file,
                                    overrides, cast_file, scenes)
    emit("engine", name=spec.engine, reason=reason)
    logger.info("engine %s: %s", spec.engine, reason)
    mlx_guard(spec)  # apple-silicon deployments: no real models without Metal (pipeline.engines.guard)
    LineStore(spec.store_root).sweep()  # temp files and claims of interrupted line writes (dead writers only)

    if report_name == REPORT_NAME:
        (out / CAST_RESULTS_NAME).unlink(missing_ok=True)  # never show an earlier run's cast beside this report
    try:
        screenplay = parse_task(os.fspath(script))
        try:
            chosen = select_scenes(screenplay, scenes, s.narration.mode)
        except ValueError as e:
            raise SettingsError(f"--scenes: {e}.") from None
        evidences = evidence_task(screenplay)
        castfile = load_cast(screenplay, cast_file)
        lexicon = run_lexicon(castfile, lexicon_file)
        with mlx_slot(spec):  # one GPU user per server: held while casting and rendering (flows/concurrency)
            t_cast = time.perf_counter()
            cast = cast_characters(screenplay, evidences, spec, castfile, force=force)
            casting_s = time.perf_counter() - t_cast
            cast_table_artifact(spec.script_name, cast_rows(cast))
            write_cast_results(out / CAST_RESULTS_NAME, str(Path(script).resolve()),
                               list(cast.values()),
                               str(Path(cast_file).resolve()) if cast_file else None)

            eng = get_engine(spec.engine, s, spec.models_dir)
            engine_desc = eng.info().identity()
            voices, variants, locks = cast_voices(cast)
            jobs = plan_line_jobs(screenplay, voices, engine_desc, s, variants, lexicon=lexicon)
            warnings = [f"line {j.source_line} ({j.character}): {n}" for j in jobs for n in j.notes
                        if n.startswith("truncated")]
            for w in warnings:
                logger.warning(w)
                emit("warning", message=w)
            by_scene: dict[int, list] = {}
            for j in jobs:
                by_scene.setdefault(j.scene_index, []).append(j)
            selected = [i for i in chosen if i in by_scene]
            full = set(selected) == set(by_scene)
            emit("plan", scenes=len(selected), lines=sum(len(by_scene[i]) for i in selected))

            total = sum(len(by_scene[i]) for i in selected)
            progress = ProgressArtifact(total, f"Rendering {spec.script_name}: {total} lines in "
                                               f"{len(selected)} scenes")
            records, batching, clock = render_scenes(spec, screenplay, by_scene, selected, locks, out, force, progress)
            progress.advance(0, force=True)
    except Exception as e:  # the run stops before any scene result: still leave a report saying why
        save_render_report(out / report_name, RenderReport(
            script=str(Path(script).resolve()), script_name=spec.script_name,
            status="interrupted" if isinstance(e, RenderInterrupted) else "failed",
            error=f"{type(e).__name__}: {e}", engine={"name": spec.engine, "reason": reason},
            started=started_at, wall_seconds=round(time.perf_counter() - started, 3), command=command))
        if report_name == REPORT_NAME:
            write_page(out)
        raise

    if requested():  # Ctrl-C: scenes not mixed yet stay "pending" in the report
        return _interrupted(out / report_name, spec, script, screenplay, reason, engine_desc, records, [],
                            started, started_at)
    failed = [r for r in records if r["status"] == "failed"]
    outputs: dict[str, str] = {}
    master_note = master_error = None
    master_s = 0.0
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
        title = plain_title(screenplay.title_page.get("title")) or spec.script_name
        mkey = content_key("master", FLOW_VERSION, {
            "scenes": [r["mix"] for r in mixes], "assembly": assembly_payload(s), "out": str(out), "title": title})
        t_master = configured(master_task, spec, force)
        payload = [{"mix": r["mix"]} for r in mixes]
        master_started = time.perf_counter()
        try:
            master = _with_outputs(t_master, lambda r: files_intact(r.get("files")),  # damaged: rebuilt
                                   mkey, payload, str(out), title, spec)
            outputs = master["outputs"]
            emit("master", outputs=outputs)
        except Exception as e:  # scenes are done and kept; the report says why the master is missing
            master_error = f"master failed: {type(e).__name__}: {e}"
            master_note = master_error
        master_s = time.perf_counter() - master_started

    scene_records = [scene_record(r) for r in records]
    counts = Counts(lines=sum(r.lines for r in scene_records), rendered=sum(r.rendered for r in scene_records),
                    reused=sum(r.reused for r in scene_records), failed=sum(r.failed for r in scene_records))
    wall = time.perf_counter() - started
    typed = RenderReport(
        script=str(Path(script).resolve()), script_name=spec.script_name,
        title=plain_title(screenplay.title_page.get("title")),
        engine={**engine_desc, "name": spec.engine, "reason": reason, **batching},
        counts=counts,
        status="failed" if failed or master_error else "completed",
        scenes=scene_records,
        failed_lines=[f for r in scene_records for f in r.failed_lines],
        repaired_lines=[f for r in scene_records for f in r.repaired_lines], warnings=warnings,
        outputs=outputs, master_note=master_note,
        cast={name: cast_record(result) for name, result in cast.items()},
        audio_seconds=round(sum(r.duration for r in scene_records), 3),
        started=started_at, wall_seconds=round(wall, 3),
        timings=Timings(**_timings(wall, casting_s, clock, records, master_s)),
        line_store=str(spec.store_root), force=force, scenes_requested=list(scenes or []),
        command=command,
        narration=NarrationRecord(mode=s.narration.mode,
                                  lines=len({(j.scene_index, j.source_line) for j in jobs if j.is_narration})),
        lexicon=lexicon_report(lexicon, jobs),
    )
    save_render_report(out / report_name, typed)  # farm shards pass their own name (flows/farm.py)
    if report_name == REPORT_NAME:
        write_page(out)
    report = typed.to_json()
    outputs_artifact(report)
    emit("done", report=report)
    if failed:
        raise RenderError(_failure_message(records))
    if master_error:
        raise RenderError(f"{master_error}. The scene files are complete in {out / 'scenes'}; fix the cause and run "
                          "the same command again (only the master is rebuilt).")
    return report
