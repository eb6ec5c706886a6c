"""Deployments on the `apple-silicon` process pool: settings → specs (pure) → a Prefect server (apply).

What `readthrough deploy` creates, every name from `settings.deploy` (pipeline/configs/default.toml):
- the process work pool `deploy.work_pool` (one worker per Mac, started with `--limit 1`: one model user each);
- the global concurrency limit `deploy.concurrency_limit` ("mlx") with `deploy.mlx_slots` slots (flows/concurrency);
- deployments `render-script`, `cast-script` and `audio-regression` that run the flows from the worker's own
  checkout: the pull step enters `{{ $READTHROUGH_CHECKOUT }}` (set by `readthrough worker`), so N Macs may keep
  the repository at different paths;
- an example nightly Cron schedule on `render-script` with its parameters (script, output folder, settings file).

`prefect.yaml` is the same thing for `prefect deploy --all`; `prefect_yaml(settings)` renders it and a unit test
keeps the committed file equal to what pipeline/configs/default.toml says.
"""

from __future__ import annotations

import copy
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.engines.guard import ALLOW_ENV, GUARD_ENV
from pipeline.errors import SettingsError

REPO = Path(__file__).resolve().parent.parent
CHECKOUT_ENV = "READTHROUGH_CHECKOUT"
PULL_STEPS = [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $" + CHECKOUT_ENV + " }}"}}]
SCHEDULE_SLUG = "nightly"

# role -> (entrypoint relative to the checkout, description)
FLOWS = {
    "render": ("flows/render.py:render_flow", "Render a script into a full-cast read-through (cast, scenes, master)."),
    "cast": ("flows/cast.py:cast_flow", "Cast every speaking character of a script (auditions, pick, lock)."),
    "regression": ("flows/regress.py:regression_flow", "Audio regression: render the golden scripts and compare."),
}


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    timezone: str
    parameters: dict[str, Any]
    active: bool = True
    slug: str = SCHEDULE_SLUG

    def to_yaml(self) -> dict:
        return {"cron": self.cron, "timezone": self.timezone, "active": self.active, "slug": self.slug,
                "parameters": dict(self.parameters)}


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment as Prefect will hold it; `entrypoint` is relative to the worker's checkout."""

    name: str
    role: str
    entrypoint: str
    work_pool: str
    description: str
    job_variables: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.entrypoint.split(":")[0].removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":")[1]

    def available(self, checkout: Path = REPO) -> bool:
        """Whether the flow's file exists in this checkout (flows under construction are skipped, not faked)."""
        return (checkout / self.entrypoint.split(":")[0]).is_file()

    def to_yaml(self) -> dict:
        out: dict[str, Any] = {
            "name": self.name, "description": self.description, "entrypoint": self.entrypoint,
            "tags": list(self.tags), "parameters": dict(self.parameters),
            "work_pool": {"name": self.work_pool, "job_variables": copy.deepcopy(self.job_variables)},
            "schedules": [s.to_yaml() for s in self.schedules],
        }
        return out


def shared_root(settings: Settings) -> Path | None:
    """`deploy.shared_root` as a path, or None. The line store is plain files, so it must be a mounted folder."""
    root = settings.deploy.shared_root.strip()
    if not root:
        return None
    if "://" in root:
        raise SettingsError(
            f"deploy.shared_root = {root!r}: the line store, voice locks and outputs are plain files, so the shared "
            f"root must be a folder every worker mounts at the same path (NFS, SMB, a synced volume), not a URL. "
            f"Mount the bucket (e.g. with mountpoint-s3 or rclone mount) and give its mount path.")
    return Path(root).expanduser()


def job_env(settings: Settings) -> dict[str, str]:
    """Environment of every flow run of the pool: the guard on, the shared work root, the user's extras."""
    env = {GUARD_ENV: "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if settings.deploy.allow_cpu_mlx:
        env[ALLOW_ENV] = "1"
    root = shared_root(settings)
    if root is not None:
        env["READTHROUGH_HOME"] = str(root)
    env.update({str(k): str(v) for k, v in settings.deploy.env.items()})
    return env


def schedule_parameters(settings: Settings, settings_file: str | None = None) -> dict[str, Any]:
    d = settings.deploy
    params: dict[str, Any] = {"script": d.schedule_script, "out_dir": d.schedule_out_dir}
    if settings_file:
        params["settings_file"] = str(settings_file)
    return params


def deployment_specs(settings: Settings, settings_file: str | os.PathLike | None = None) -> list[DeploymentSpec]:
    """The three deployments, from settings alone (pure: no Prefect, no file access)."""
    d = settings.deploy
    jv = {"env": job_env(settings)}
    params = {"settings_file": str(settings_file)} if settings_file else {}
    schedules: tuple[ScheduleSpec, ...] = ()
    if d.schedule_cron.strip():
        schedules = (ScheduleSpec(d.schedule_cron, d.schedule_timezone, schedule_parameters(settings, settings_file),
                                  active=d.schedule_active),)
    names = {"render": d.render_deployment, "cast": d.cast_deployment, "regression": d.regression_deployment}
    specs = []
    for role, (entrypoint, description) in FLOWS.items():
        specs.append(DeploymentSpec(
            name=names[role], role=role, entrypoint=entrypoint, work_pool=d.work_pool, description=description,
            job_variables=jv, parameters=dict(params), schedules=schedules if role == "render" else (),
            tags=("readthrough", "mlx" if role != "regression" else "ci"),
        ))
    return specs


def prefect_yaml(settings: Settings, settings_file: str | None = None) -> dict:
    """The prefect.yaml document equivalent to `readthrough deploy` (for `prefect deploy --all`)."""
    return {
        "name": "readthrough",
        "prefect-version": "3.9.1",
        "build": None,
        "push": None,
        "pull": PULL_STEPS,
        "deployments": [s.to_yaml() for s in deployment_specs(settings, settings_file)],
    }


def render_prefect_yaml(settings: Settings) -> str:
    import yaml

    header = ("# Generated from the default settings by `python -m flows.deploy` — edit the [deploy] settings and\n"
              "# regenerate (tests/test_deploy_unit.py checks they agree). Usage, from the checkout:\n"
              "#   prefect work-pool create apple-silicon --type process\n"
              "#   prefect gcl create mlx --limit 1\n"
              "#   prefect deploy --all\n"
              "#   READTHROUGH_CHECKOUT=$PWD prefect worker start --pool apple-silicon --limit 1\n"
              "# `readthrough deploy` and `readthrough worker` do all of this from your settings.\n")
    return header + yaml.safe_dump(prefect_yaml(settings), sort_keys=False, width=110)


# ------------------------------------------------------------------------------------------------ applying


@dataclass
class DeployResult:
    """What `apply` did, as lines a user can read."""

    actions: list[str] = field(default_factory=list)
    deployment_ids: dict[str, str] = field(default_factory=dict)

    def add(self, line: str) -> None:
        self.actions.append(line)


def describe_plan(settings: Settings, specs: list[DeploymentSpec], checkout: Path = REPO) -> list[str]:
    """The same lines `apply` prints, without touching a server (for --dry-run)."""
    d = settings.deploy
    lines = [f"work pool {d.work_pool!r} (type process)",
             f"global concurrency limit {d.concurrency_limit!r} with {d.mlx_slots} slot(s)"]
    for s in specs:
        if not s.available(checkout):
            lines.append(f"skip deployment {s.name!r}: {s.entrypoint.split(':')[0]} is not in this checkout")
            continue
        lines.append(f"deployment {s.name!r}: {s.entrypoint} on pool {s.work_pool!r}, env "
                     f"{', '.join(sorted(s.job_variables.get('env', {})))}")
        for sc in s.schedules:
            state = "active" if sc.active else "paused"
            lines.append(f"  schedule {sc.cron!r} ({sc.timezone}, {state}) with parameters {sc.parameters}")
    return lines


def ensure_pool(client, name: str, result: DeployResult) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(
            name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
            description="readthrough: Apple-silicon Macs, one worker per Mac started with --limit 1"))
        result.add(f"created work pool {name!r} (type process)")
        return
    if pool.type != "process":
        raise SettingsError(f"Work pool {name!r} exists with type {pool.type!r}; readthrough needs a process pool. "
                            f"Set deploy.work_pool to another name or delete that pool.")
    result.add(f"work pool {name!r} exists (type process)")


def ensure_limit(client, name: str, slots: int, result: DeployResult) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
        result.add(f"created global concurrency limit {name!r} with {slots} slot(s)")
        return
    if limit.limit != slots or not limit.active:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots, active=True))
        result.add(f"updated global concurrency limit {name!r} to {slots} slot(s) (was {limit.limit})")
    else:
        result.add(f"global concurrency limit {name!r} exists with {slots} slot(s)")


def _load_flow(spec: DeploymentSpec):
    return getattr(importlib.import_module(spec.module), spec.function)


def apply_deployment(client, spec: DeploymentSpec, result: DeployResult) -> str:
    """Create or update one deployment (its schedules replaced by ours); returns its id."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.utilities.callables import parameter_schema

    flow = _load_flow(spec)
    flow_id = client.create_flow_from_name(flow.name)
    schedules = [DeploymentScheduleCreate(
        schedule=CronSchedule(cron=s.cron, timezone=s.timezone), active=s.active, parameters=s.parameters,
        slug=s.slug) for s in spec.schedules]
    dep_id = client.create_deployment(
        flow_id=flow_id, name=spec.name, work_pool_name=spec.work_pool, entrypoint=spec.entrypoint, path=None,
        pull_steps=PULL_STEPS, parameters=spec.parameters, job_variables=spec.job_variables,
        parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(), description=spec.description,
        tags=list(spec.tags), schedules=schedules, enforce_parameter_schema=True,
    )
    _replace_schedules(client, dep_id, spec)
    result.add(f"deployment {flow.name}/{spec.name} ({spec.entrypoint}) on pool {spec.work_pool!r}")
    for s in spec.schedules:
        result.add(f"  schedule {s.cron!r} ({s.timezone}, {'active' if s.active else 'paused'}) "
                   f"with parameters {s.parameters}")
    result.deployment_ids[spec.name] = str(dep_id)
    return str(dep_id)


def _replace_schedules(client, dep_id, spec: DeploymentSpec) -> None:
    """An update keeps old schedules on some server versions: drop any schedule that is not ours."""
    wanted = {(s.cron, s.timezone, s.slug) for s in spec.schedules}
    seen = set()
    for sched in client.read_deployment_schedules(dep_id):
        ident = (getattr(sched.schedule, "cron", None), getattr(sched.schedule, "timezone", None), sched.slug)
        if ident not in wanted or ident in seen:
            client.delete_deployment_schedule(dep_id, sched.id)
        seen.add(ident)


def apply(settings: Settings, settings_file: str | os.PathLike | None = None, checkout: Path = REPO) -> DeployResult:
    """Create (or update) pool, `mlx` limit and deployments on the server named by PREFECT_API_URL."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise SettingsError("PREFECT_API_URL is not set: deployments need a Prefect server that your workers reach. "
                            "Start one (`prefect server start`) and export PREFECT_API_URL=http://HOST:4200/api.")
    d = settings.deploy
    result = DeployResult()
    specs = deployment_specs(settings, settings_file)
    with get_client(sync_client=True) as client:
        ensure_pool(client, d.work_pool, result)
        ensure_limit(client, d.concurrency_limit, d.mlx_slots, result)
        for spec in specs:
            if not spec.available(checkout):
                result.add(f"skipped deployment {spec.name!r}: {spec.entrypoint.split(':')[0]} is not in this "
                           f"checkout")
                continue
            apply_deployment(client, spec, result)
    return result


if __name__ == "__main__":  # regenerate prefect.yaml from pipeline/configs/default.toml
    from pipeline.config import load_settings

    target = REPO / "prefect.yaml"
    target.write_text(render_prefect_yaml(load_settings()), encoding="utf-8")
    print(f"wrote {target}")
