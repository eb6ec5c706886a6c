"""Farm mode: one script rendered by several Macs — cast once, one `run_deployment` per shard of scenes, then one
master. Prefect is the distributed engine; this module only decides the shards and waits for them.

    parent (any machine with PREFECT_API_URL)          workers on the pool (one per Mac, --limit 1)
    ├─ copy script/cast/settings into the shared root
    ├─ cast every character (voice locks → shared root) ─── holds the `mlx` slot only here
    ├─ split spoken scenes into N shards (balanced by lines)
    ├─ run_deployment(render-script, scenes=shard) × N ──▶ render_flow(scenes=shard): render + mix those scenes
    ├─ wait for all N (bounded by deploy.farm_timeout_s)      (line store, task results, scene files: shared root)
    └─ render_flow(all scenes): every scene is a cache hit → master + deliverables, written once

Every scene is rendered by exactly one shard: the shards partition the scenes, the final pass finds each scene's
task result in the shared result storage (same content key) and builds only the master. The shared root is a
folder mounted at the same path on every machine (`deploy.shared_root`): the line store is plain files.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from pipeline.errors import RenderError, SettingsError
from pipeline.files import atomic_path, atomic_write_json
from pipeline.keys import sha256_file

FARM_REPORT = "farm-report.json"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def plan_shards(weights: dict[str, int], n: int) -> list[list[str]]:
    """Split scene labels into at most `n` non-empty shards of similar weight (lines), each in script order.

    Largest scene first onto the lightest shard (LPT); ties keep script order. Pure and deterministic."""
    labels = list(weights)
    n = max(1, min(n, len(labels)))
    loads = [0] * n
    members: list[list[str]] = [[] for _ in range(n)]
    for label in sorted(labels, key=lambda lab: (-weights[lab], labels.index(lab))):
        i = min(range(n), key=lambda k: (loads[k], k))
        loads[i] += max(1, weights[label])
        members[i].append(label)
    order = {lab: k for k, lab in enumerate(labels)}
    return [sorted(m, key=order.__getitem__) for m in members if m]


def shard_report_name(index: int, total: int) -> str:
    return f"render-report.shard-{index + 1}-of-{total}.json"


def stage_input(path: str | None, root: Path) -> str | None:
    """Copy a user file into ROOT/inputs/<digest>/ so every worker reads the very same bytes; returns the copy."""
    if not path:
        return None
    src = Path(path).expanduser()
    if not src.is_file():
        raise SettingsError(f"{path}: no such file (farm input). Pass an existing file.")
    dest = root / "inputs" / sha256_file(src)[:16] / src.name
    if not dest.is_file():
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    return str(dest)


STAGED_INPUTS = ("script", "settings_file", "cast_file", "lexicon_file")


def shard_inputs(root: Path, **params) -> dict:
    """The render_flow parameters every shard (and the final master run) gets: the user's files staged under ROOT."""
    return {**params, **{name: stage_input(params.get(name), root) for name in STAGED_INPUTS}}


@contextmanager
def _home(root: Path):
    """READTHROUGH_HOME = the shared root for this process while the farm runs (restored afterwards)."""
    old = os.environ.get("READTHROUGH_HOME")
    os.environ["READTHROUGH_HOME"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("READTHROUGH_HOME", None)
        else:
            os.environ["READTHROUGH_HOME"] = old


def _online_workers(client, pool: str) -> int:
    try:
        workers = client.read_workers_for_work_pool(pool)
    except Exception:
        return 0
    return sum(1 for w in workers if str(getattr(w, "status", "")).upper().endswith("ONLINE"))


def _require_deployment(client, name: str, pool: str) -> None:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise SettingsError(f"Farm: deployment {name!r} is not on this server. Run `readthrough deploy --settings "
                            f"FILE` against it, and `readthrough worker` on each Mac of pool {pool!r}.") from None


def _shard_env(client, settings, deployment_name: str, root: Path) -> dict[str, str]:
    """The deployment's env plus READTHROUGH_HOME = root (a flow run's `env` replaces the deployment's whole)."""
    from flows.deploy import job_env

    env = dict(job_env(settings))
    try:
        dep = client.read_deployment_by_name(deployment_name)
        env.update((dep.job_variables or {}).get("env") or {})
    except Exception:
        pass
    env["READTHROUGH_HOME"] = str(root)
    return env


def _timing(fr) -> dict:
    """Seconds from dispatch to start (queueing + worker pickup + process start) and of the run itself."""
    out = {}
    if getattr(fr, "start_time", None) and getattr(fr, "created", None):
        out["dispatch_s"] = round((fr.start_time - fr.created).total_seconds(), 2)
    if getattr(fr, "total_run_time", None) is not None:
        out["run_s"] = round(fr.total_run_time.total_seconds(), 2)
    return out


def _wait(client, runs: dict[int, Any], timeout_s: float, poll_s: float, logger) -> dict[int, Any]:
    deadline = time.monotonic() + timeout_s
    pending = dict(runs)
    final: dict[int, Any] = {}
    while pending:
        for i, run in list(pending.items()):
            fr = client.read_flow_run(run.id)
            if fr.state is not None and fr.state.type.value in TERMINAL:
                final[i] = fr
                pending.pop(i)
                logger.info("shard %d: %s", i + 1, fr.state.name)
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(f"shard {i + 1} ({run.name})" for i, run in pending.items())
            raise RenderError(f"Farm: {names} did not finish within deploy.farm_timeout_s = {timeout_s:g} s. Check "
                              f"that workers are online on the pool (`prefect work-pool inspect`), then run the "
                              f"same command again: finished scenes are reused.")
        time.sleep(poll_s)
    return final


def _dispatch(client, dep_name: str, plan: list[list[str]], parameters: dict, env: dict, script_name: str,
              logger) -> dict[int, Any]:
    """One `run_deployment` per shard, not waiting (timeout=0): the flow runs are linked as subflows."""
    from prefect.deployments import run_deployment

    runs = {}
    for i, labels in enumerate(plan):
        runs[i] = run_deployment(
            dep_name, timeout=0, job_variables={"env": env}, tags=["farm"],
            flow_run_name=f"{script_name}-shard-{i + 1}-of-{len(plan)}",
            parameters={**parameters, "scenes": labels, "report_name": shard_report_name(i, len(plan))})
        logger.info("shard %d/%d: scenes %s → flow run %s", i + 1, len(plan), ", ".join(labels), runs[i].id)
    return runs


def _shard_rows(plan, runs, final, out: Path) -> list[dict]:
    return [{"shard": i + 1, "scenes": plan[i], "flow_run_id": str(runs[i].id), "flow_run_name": final[i].name,
             "state": final[i].state.name, "completed": final[i].state.type.value == "COMPLETED",
             "report": str(out / shard_report_name(i, len(plan))), **_timing(final[i])} for i in range(len(plan))]


def _failure(rows: list[dict]) -> str:
    failed = "; ".join(f"shard {r['shard']} (scenes {', '.join(r['scenes'])}) ended {r['state']} — see flow run "
                       f"{r['flow_run_name']}" for r in rows if not r["completed"])
    return f"Farm: {failed}. No master was built. Run the same command again: finished scenes are reused."


@flow(name="render-farm", log_prints=False)
def farm_flow(script: str, out_dir: str, engine: str = "auto", models_dir: str | None = None,
              settings_file: str | None = None, overrides: dict[str, Any] | None = None,
              cast_file: str | None = None, shards: int = 0, force: bool = False, poll_s: float = 2.0,
              lexicon_file: str | None = None) -> dict:
    """Render SCRIPT across the pool's workers; returns the farm report (also OUT_DIR/farm-report.json).

    `shards` 0 = deploy.farm_shards, and if that is 0 too, one per online worker. A relative OUT_DIR is inside
    the shared root. Run it from any machine that reaches the server and mounts the shared root — not as a
    deployment on the pool, where it would hold a worker its own shards need."""
    from prefect.client.orchestration import get_client

    from flows.cast import cast_characters, load_cast, make_spec
    from flows.concurrency import mlx_guard, mlx_slot
    from flows.deploy import shared_root
    from flows.render import render_flow
    from flows.tasks import evidence_task, parse_task
    from pipeline.config import load_settings
    from pipeline.render import scene_label, spoken_scenes

    started = time.monotonic()
    logger = get_run_logger()
    settings = load_settings(settings_file, overrides or None)
    d = settings.deploy
    root = shared_root(settings)
    if root is None:
        raise SettingsError("Farm mode needs deploy.shared_root: a folder every worker mounts at the same path "
                            "(line store, voice locks, outputs). Set it in your settings file and pass --settings.")
    root.mkdir(parents=True, exist_ok=True)
    out = Path(out_dir).expanduser()
    out = (out if out.is_absolute() else root / out).resolve()
    common = shard_inputs(root, script=script, out_dir=str(out), models_dir=models_dir, settings_file=settings_file,
                          overrides=overrides, cast_file=cast_file, lexicon_file=lexicon_file)
    script_c, settings_c, cast_c = common["script"], common["settings_file"], common["cast_file"]

    with _home(root):
        spec, reason = make_spec(script_c, engine, models_dir, settings_c, overrides)
        logger.info("farm: engine %s (%s); shared root %s", spec.engine, reason, root)
        mlx_guard(spec)
        screenplay = parse_task(script_c)
        with mlx_slot(spec):  # casting uses the engine; released before the shards need the slot
            cast_characters(screenplay, evidence_task(screenplay), spec, load_cast(screenplay, cast_c), force=force)
        weights = {scene_label(screenplay, i): len(screenplay.scenes[i].dialogues) + 1  # + its narration
                   for i in spoken_scenes(screenplay, settings.narration.mode)}
        dep_name = f"{render_flow.name}/{d.render_deployment}"
        with get_client(sync_client=True) as client:
            _require_deployment(client, dep_name, d.work_pool)
            plan = plan_shards(weights, shards or d.farm_shards or _online_workers(client, d.work_pool) or 1)
            runs = _dispatch(client, dep_name, plan, {**common, "engine": spec.engine, "force": force},
                             _shard_env(client, settings, dep_name, root), spec.script_name, logger)
            final = _wait(client, runs, d.farm_timeout_s, poll_s, logger)
        rows = _shard_rows(plan, runs, final, out)
        report: dict[str, Any] = {"script": str(Path(script).resolve()), "staged_script": script_c,
                                  "shared_root": str(root), "engine": spec.engine, "shards": rows}
        if not all(r["completed"] for r in rows):
            atomic_write_json(out / FARM_REPORT, {**report, "status": "failed"})
            raise RenderError(_failure(rows))
        final_report = render_flow(**common, engine=spec.engine, force=False)  # all scenes cached → master
    report.update(status="completed", render_report=str(out / "render-report.json"),
                  wall_seconds=round(time.monotonic() - started, 2),
                  outputs=final_report.get("outputs", {}), master_note=final_report.get("master_note"))
    atomic_write_json(out / FARM_REPORT, report)
    return report
