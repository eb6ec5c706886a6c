"""Deployment wiring without a server: the MLX guard, settings → deployment specs, prefect.yaml agreeing with
pipeline/configs/default.toml, the CLI dry runs, shard planning and the MLX slot helper."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings as hsettings, strategies as st

from flows.deploy import (
    CHECKOUT_ENV, FLOWS, PULL_STEPS, REPO, deployment_specs, describe_plan, job_env, prefect_yaml,
    render_prefect_yaml, shared_root,
)
from flows.farm import plan_shards, shard_report_name, stage_input
from pipeline.config import load_settings
from pipeline.engines.guard import ALLOW_ENV, GUARD_ENV, check_mlx_backend, guard_from_env
from pipeline.errors import EngineError, SettingsError


@pytest.fixture
def settings():
    return load_settings()


# ------------------------------------------------------------------------------------------------ guard


def test_guard_refuses_qwen3_without_metal_and_says_the_fix(settings):
    with pytest.raises(EngineError) as e:
        check_mlx_backend("qwen3", settings, None, metal=False)
    msg = str(e.value)
    assert "Metal" in msg and "allow_cpu_mlx" in msg and ALLOW_ENV in msg and "--allow-cpu-mlx" in msg


@pytest.mark.parametrize("engine", ["preview", "instant"])
def test_guard_exempts_engines_without_real_models(settings, engine):
    assert "no GPU needed" in check_mlx_backend(engine, settings, None, metal=False)


def test_guard_exempts_an_explicit_models_dir(settings, tmp_path):
    assert str(tmp_path) in check_mlx_backend("qwen3", settings, tmp_path, metal=False)


def test_guard_allows_metal_and_explicit_cpu_choices(settings):
    assert "Metal backend available" in check_mlx_backend("qwen3", settings, None, metal=True)
    assert "allowed explicitly" in check_mlx_backend("qwen3", settings, None, metal=False, allow_cpu=True)
    allowed = settings.with_overrides({"deploy.allow_cpu_mlx": True})
    assert "deploy.allow_cpu_mlx" in check_mlx_backend("qwen3", allowed, None, metal=False)


def test_guard_from_env_applies_only_under_the_deployment_flag(settings, monkeypatch):
    monkeypatch.setattr("pipeline.engines.guard.metal_available", lambda: False)
    assert guard_from_env("qwen3", settings, None, environ={}) is None
    with pytest.raises(EngineError):
        guard_from_env("qwen3", settings, None, environ={GUARD_ENV: "1"})
    assert "explicitly" in guard_from_env("qwen3", settings, None, environ={GUARD_ENV: "1", ALLOW_ENV: "true"})


# ------------------------------------------------------------------------------------------------ specs


def test_specs_take_every_name_from_settings(settings):
    custom = settings.with_overrides({
        "deploy.work_pool": "studio-macs", "deploy.render_deployment": "nightly-render",
        "deploy.cast_deployment": "casting", "deploy.regression_deployment": "ci-audio",
        "deploy.schedule_cron": "30 1 * * 1-5", "deploy.schedule_timezone": "America/New_York",
        "deploy.schedule_script": "scripts/pilot.fountain", "deploy.schedule_out_dir": "renders/pilot",
        "deploy.env": {"HF_HOME": "/Volumes/models"}, "deploy.schedule_active": False})
    specs = {s.role: s for s in deployment_specs(custom, "/etc/studio.toml")}
    assert {s.name for s in specs.values()} == {"nightly-render", "casting", "ci-audio"}
    assert {s.work_pool for s in specs.values()} == {"studio-macs"}
    (sched,) = specs["render"].schedules
    assert (sched.cron, sched.timezone, sched.active) == ("30 1 * * 1-5", "America/New_York", False)
    assert sched.parameters == {"script": "scripts/pilot.fountain", "out_dir": "renders/pilot",
                                "settings_file": "/etc/studio.toml"}
    assert not specs["cast"].schedules and not specs["regression"].schedules
    env = specs["cast"].job_variables["env"]
    assert env["HF_HOME"] == "/Volumes/models" and env[GUARD_ENV] == "1"
    assert all(s.parameters == {"settings_file": "/etc/studio.toml"} for s in specs.values())


def test_empty_cron_means_no_schedule(settings):
    specs = deployment_specs(settings.with_overrides({"deploy.schedule_cron": ""}))
    assert all(not s.schedules for s in specs)


def test_job_env_shared_root_and_cpu_choice(settings, tmp_path):
    env = job_env(settings)
    assert env[GUARD_ENV] == "1" and ALLOW_ENV not in env and "READTHROUGH_HOME" not in env
    s = settings.with_overrides({"deploy.shared_root": str(tmp_path), "deploy.allow_cpu_mlx": True})
    env = job_env(s)
    assert env["READTHROUGH_HOME"] == str(tmp_path) and env[ALLOW_ENV] == "1"


def test_shared_root_must_be_a_mounted_path(settings):
    assert shared_root(settings) is None
    with pytest.raises(SettingsError, match="mount"):
        shared_root(settings.with_overrides({"deploy.shared_root": "s3://bucket/readthrough"}))


def test_entrypoints_exist_and_name_the_flows(settings):
    """Each deployment's entrypoint is a real flow of this checkout (flow name = the deployment's flow)."""
    expected_flow = {"render": "render-script", "cast": "cast-script", "regression": "audio-regression"}
    for spec in deployment_specs(settings):
        path, func = spec.entrypoint.split(":")
        assert (REPO / path).is_file(), f"{path}: the deployment's entrypoint file is missing"
        flow = getattr(importlib.import_module(spec.module), func)
        assert flow.name == expected_flow[spec.role]


def test_render_flow_accepts_the_farm_shard_parameters():
    import inspect

    from flows.render import render_flow

    params = inspect.signature(render_flow.fn).parameters
    for name in ("script", "out_dir", "engine", "models_dir", "settings_file", "overrides", "cast_file", "scenes",
                 "force", "report_name"):
        assert name in params


# ------------------------------------------------------------------------------------------------ prefect.yaml


def test_prefect_yaml_matches_default_settings(settings):
    committed = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert committed == prefect_yaml(settings), "regenerate it: python -m flows.deploy"
    assert yaml.safe_load(render_prefect_yaml(settings)) == committed


def test_prefect_yaml_names_pool_deployments_and_schedule(settings):
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    d = settings.deploy
    deps = {x["name"]: x for x in doc["deployments"]}
    assert set(deps) == {d.render_deployment, d.cast_deployment, d.regression_deployment}
    assert {x["work_pool"]["name"] for x in deps.values()} == {d.work_pool}
    (sched,) = deps[d.render_deployment]["schedules"]
    assert sched["cron"] == d.schedule_cron and sched["timezone"] == d.schedule_timezone
    assert sched["parameters"]["script"] == d.schedule_script
    assert (REPO / sched["parameters"]["script"]).is_file()  # the example schedule renders a real file
    assert doc["pull"] == PULL_STEPS and CHECKOUT_ENV in str(doc["pull"])
    assert {x["entrypoint"] for x in deps.values()} == {e for e, _ in FLOWS.values()}


# ------------------------------------------------------------------------------------------------ CLI


def test_deploy_dry_run_prints_the_plan(tmp_path):
    from flows.cli.deploy import command

    cfg = tmp_path / "s.toml"
    cfg.write_text('[deploy]\nwork_pool = "studio"\nmlx_slots = 3\n')
    out = tmp_path / "prefect.yaml"
    res = CliRunner().invoke(command, ["--settings", str(cfg), "--dry-run", "--write-prefect-yaml", str(out)])
    assert res.exit_code == 0, res.output
    assert "work pool 'studio'" in res.output and "'mlx' with 3 slot(s)" in res.output
    assert "schedule '0 3 * * *'" in res.output
    assert yaml.safe_load(out.read_text())["deployments"][0]["work_pool"]["name"] == "studio"


def test_describe_plan_skips_flows_missing_from_the_checkout(settings, tmp_path):
    lines = describe_plan(settings, deployment_specs(settings), checkout=tmp_path)
    assert sum("skip deployment" in x for x in lines) == 3


def test_deploy_without_a_server_says_how(settings, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deploy import apply

    with temporary_settings({PREFECT_API_URL: None}):
        with pytest.raises(SettingsError, match="PREFECT_API_URL"):
            apply(settings)


def test_worker_dry_run_and_environment(tmp_path, monkeypatch):
    from flows.cli.worker import command, worker_argv, worker_env

    argv = worker_argv("apple-silicon", 1, "mac-1")
    assert argv[1:5] == ["-m", "prefect", "worker", "start"]
    assert argv[argv.index("--pool") + 1] == "apple-silicon" and argv[argv.index("--type") + 1] == "process"
    assert argv[argv.index("--limit") + 1] == "1" and argv[argv.index("--name") + 1] == "mac-1"
    env = worker_env({"PATH": "/bin"}, "/src/readthrough", allow_cpu_mlx=True, home="/mnt/farm")
    assert env[CHECKOUT_ENV] == "/src/readthrough" and env[ALLOW_ENV] == "1" and env["READTHROUGH_HOME"] == "/mnt/farm"
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[deploy]\nwork_pool = "studio"\nshared_root = "{tmp_path / "farm"}"\n')
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    res = CliRunner().invoke(command, ["--settings", str(cfg), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "--pool studio" in res.output and "--limit 1" in res.output
    assert f"READTHROUGH_HOME={tmp_path / 'farm'}" in res.output and f"{CHECKOUT_ENV}={REPO}" in res.output


# ------------------------------------------------------------------------------------------------ farm


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(1, 8))
def test_plan_shards_is_a_balanced_partition_in_script_order(sizes, n):
    weights = {str(i + 1): w for i, w in enumerate(sizes)}
    shards = plan_shards(weights, n)
    flat = [x for s in shards for x in s]
    assert sorted(flat, key=int) == list(weights) and len(flat) == len(set(flat))  # every scene exactly once
    assert len(shards) == min(n, len(weights)) and all(shards)
    assert all(s == sorted(s, key=int) for s in shards)
    loads = [sum(max(1, weights[x]) for x in s) for s in shards]
    assert max(loads) - min(loads) <= max(max(1, w) for w in weights.values())  # LPT bound


def test_plan_shards_is_deterministic():
    w = {"1": 2, "2": 7, "3": 6, "4": 3}
    assert plan_shards(w, 2) == plan_shards(dict(w), 2) == [["1", "2"], ["3", "4"]]
    assert shard_report_name(0, 2) == "render-report.shard-1-of-2.json"


def test_stage_input_copies_by_content(tmp_path):
    src = tmp_path / "pilot.fountain"
    src.write_text("INT. ROOM - DAY\n\nANNA\nHi.\n")
    a = stage_input(str(src), tmp_path / "root")
    assert Path(a).read_text() == src.read_text() and Path(a).name == "pilot.fountain"
    assert stage_input(str(src), tmp_path / "root") == a
    src.write_text("INT. ROOM - DAY\n\nANNA\nHello.\n")
    assert stage_input(str(src), tmp_path / "root") != a  # an edited script is a new input
    assert stage_input(None, tmp_path) is None
    with pytest.raises(SettingsError):
        stage_input(str(tmp_path / "missing.fountain"), tmp_path)


# ------------------------------------------------------------------------------------------------ MLX slot


class _Spec:
    def __init__(self, engine, settings):
        self.engine, self.settings, self.models_dir = engine, settings, None


def test_mlx_slot_skips_the_server_for_engines_without_mlx(settings, monkeypatch):
    import flows.concurrency as fc

    monkeypatch.setattr(fc, "api_url", lambda: pytest.fail("instant needs no MLX slot"))
    with fc.mlx_slot(_Spec("instant", settings)):
        pass


def test_mlx_slot_is_strict_against_a_server(settings, monkeypatch):
    import prefect.concurrency.sync as pcs
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

    import flows.concurrency as fc

    calls = []

    def fake_concurrency(names, occupy=1, timeout_seconds=None, strict=False, **kw):
        calls.append((names, occupy, strict))
        raise ConcurrencySlotAcquisitionError("Concurrency limits ['mlx'] not found")

    monkeypatch.setattr(fc, "api_url", lambda: "http://127.0.0.1:4200/api")
    monkeypatch.setattr(pcs, "concurrency", fake_concurrency)
    with pytest.raises(EngineError, match="readthrough deploy"):
        with fc.mlx_slot(_Spec("qwen3", settings)):
            pytest.fail("must not run without the slot")
    assert calls == [("mlx", 1, True)]


def test_mlx_slot_local_mode_serialises_in_process(settings, monkeypatch):
    import threading

    import flows.concurrency as fc

    monkeypatch.setattr(fc, "api_url", lambda: None)
    inside = threading.Event()
    release = threading.Event()
    order = []

    def holder():
        with fc.mlx_slot(_Spec("qwen3", settings)):
            inside.set()
            release.wait(5)
            order.append("first")

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)
    def second():
        with fc.mlx_slot(_Spec("qwen3", settings)):
            order.append("second")

    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(0.3)
    assert order == []  # the second MLX user waits for the first
    release.set()
    t.join(5)
    waiter.join(5)
    assert order == ["first", "second"]


class _State:
    def __init__(self, type_, name):
        self.type = type("T", (), {"value": type_})()
        self.name = name


class _Run:
    def __init__(self, id_, state=None, name="run"):
        self.id, self.state, self.name = id_, state, name


class _FakeClient:
    """Flow runs that reach their final state after a few polls; a deployment with its own env."""

    def __init__(self, finals: dict, polls: int = 2):
        self.finals, self.polls, self.seen = finals, polls, {}

    def read_flow_run(self, run_id):
        self.seen[run_id] = self.seen.get(run_id, 0) + 1
        if self.finals[run_id] is None or self.seen[run_id] < self.polls:
            return _Run(run_id, _State("RUNNING", "Running"))
        return _Run(run_id, self.finals[run_id], name=f"run-{run_id}")

    def read_deployment_by_name(self, name):
        return type("D", (), {"job_variables": {"env": {"HF_HOME": "/Volumes/models", "READTHROUGH_HOME": "/old"}}})()


def test_farm_wait_returns_every_final_state_and_is_bounded():
    import logging

    from flows.farm import _wait
    from pipeline.errors import RenderError

    log = logging.getLogger("test")
    client = _FakeClient({"a": _State("COMPLETED", "Completed"), "b": _State("FAILED", "Failed")})
    final = _wait(client, {0: _Run("a"), 1: _Run("b")}, timeout_s=5, poll_s=0.01, logger=log)
    assert {i: fr.state.name for i, fr in final.items()} == {0: "Completed", 1: "Failed"}
    stuck = _FakeClient({"a": _State("COMPLETED", "Completed"), "c": None})
    with pytest.raises(RenderError, match="shard 2 .*farm_timeout_s"):
        _wait(stuck, {0: _Run("a"), 1: _Run("c", name="pilot-shard-2")}, timeout_s=0.05, poll_s=0.01, logger=log)


def test_farm_shard_env_keeps_the_deployment_env_and_points_home_at_the_shared_root(settings, tmp_path):
    from flows.farm import _shard_env

    env = _shard_env(_FakeClient({}), settings, "render-script/render-script", tmp_path)
    assert env["HF_HOME"] == "/Volumes/models" and env[GUARD_ENV] == "1"
    assert env["READTHROUGH_HOME"] == str(tmp_path)


def test_farm_failure_message_names_shards_scenes_and_runs(tmp_path):
    from flows.farm import _failure, _shard_rows

    plan = [["1", "2"], ["3"]]
    runs = {0: _Run("a"), 1: _Run("b")}
    final = {0: _Run("a", _State("COMPLETED", "Completed"), "pilot-shard-1-of-2"),
             1: _Run("b", _State("CRASHED", "Crashed"), "pilot-shard-2-of-2")}
    rows = _shard_rows(plan, runs, final, tmp_path)
    assert [r["completed"] for r in rows] == [True, False]
    assert rows[1]["report"] == str(tmp_path / "render-report.shard-2-of-2.json")
    msg = _failure(rows)
    assert "shard 2 (scenes 3) ended Crashed" in msg and "pilot-shard-2-of-2" in msg and "shard 1" not in msg
    assert "again" in msg


def test_private_server_of_a_command_needs_no_global_mlx_limit(monkeypatch):
    """A qwen3 render from the CLI runs on the private Prefect server the command started for itself (flows.server):
    no other process uses it and it has no `mlx` limit, so the slot is only the in-process lock. A configured server
    (PREFECT_API_URL of the user's) is shared, and there the strict global limit applies."""
    from flows import concurrency
    from flows.server import PRIVATE_API_ENV

    monkeypatch.setattr(concurrency, "api_url", lambda: "http://127.0.0.1:4321/api")
    monkeypatch.setenv(PRIVATE_API_ENV, "http://127.0.0.1:4321/api")
    assert not concurrency.shared_server()
    monkeypatch.setenv(PRIVATE_API_ENV, "http://127.0.0.1:9999/api")
    assert concurrency.shared_server()
    monkeypatch.delenv(PRIVATE_API_ENV)
    assert concurrency.shared_server()
    monkeypatch.setattr(concurrency, "api_url", lambda: None)
    assert not concurrency.shared_server()


def test_farm_stages_every_user_file_the_shards_read_including_the_lexicon(tmp_path):
    from flows.farm import shard_inputs

    script = tmp_path / "pilot.fountain"
    script.write_text("INT. ROOM - DAY\n\nANNA\nHello.\n")
    lexicon = tmp_path / "names.toml"
    lexicon.write_text('Siobhan = "Shiv-awn"\n')
    root = tmp_path / "shared"
    params = shard_inputs(root, script=str(script), out_dir="/o", models_dir=None, settings_file=None,
                          overrides={"narration.mode": "none"}, cast_file=None, lexicon_file=str(lexicon))
    staged = Path(params["lexicon_file"])
    assert staged.is_relative_to(root / "inputs") and staged.read_bytes() == lexicon.read_bytes()
    assert Path(params["script"]).is_relative_to(root / "inputs")
    assert params["settings_file"] is None and params["cast_file"] is None
    assert params["overrides"] == {"narration.mode": "none"} and params["out_dir"] == "/o"


def test_farm_cli_refuses_a_bad_lexicon_before_dispatching(tmp_path, sample_script, monkeypatch, capsys):
    from flows.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = tmp_path / "studio.toml"
    settings.write_text("")
    bad = tmp_path / "names.toml"
    bad.write_text("Siobhan = \n")
    with pytest.raises(SystemExit) as e:
        main(["farm", str(sample_script), "-o", "out", "--settings", str(settings), "--lexicon", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "TOML" in err and "PREFECT_API_URL" not in err
