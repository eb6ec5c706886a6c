"""Deployments against a real `prefect server start`: pool, `mlx` limit, schedule, process workers, a tiny-model
render through the render-script deployment, and a two-worker farm render where every scene renders exactly once.

One server for the module (own PREFECT_HOME in a temp dir, a free loopback port, services off); every process is
started in its own session and killed by process group in a finally. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVER_START_S = 120
RUN_WAIT_S = 180


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Processes this module started, each in its own session; `stop` kills whole process groups."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def tail(self, name: str, n: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            _killpg(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc, signal.SIGKILL)
                proc.wait(timeout=10)


def _killpg(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: the group id is the leader's pid
    except ProcessLookupError:
        pass


def _wait_healthy(url: str, proc: subprocess.Popen, procs: Processes) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}:\n{procs.tail('server')}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {SERVER_START_S} s:\n{procs.tail('server')}")


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A running server with readthrough deployed (shared root in a temp dir) and one worker."""
    tmp = tmp_path_factory.mktemp("deploy-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    shared = tmp / "shared"
    settings_file = tmp / "farm.toml"
    settings_file.write_text(f'[deploy]\nshared_root = "{shared}"\nschedule_timezone = "Europe/Berlin"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_UI_ENABLED="false", PREFECT_WORKER_QUERY_SECONDS="1",
               PREFECT_WORKER_PREFETCH_SECONDS="5", PREFECT_LOGGING_LEVEL="INFO", HF_HUB_OFFLINE="1",
               READTHROUGH_HOME=str(tmp / "local-home"), PYTHONUNBUFFERED="1")
    procs = Processes(tmp)
    try:
        server = procs.start("server", [PY, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                        "--port", str(port), "--no-services", "--no-ui"], env)
        _wait_healthy(url, server, procs)
        deploy = subprocess.run([PY, "-m", "flows", "deploy", "--settings", str(settings_file)], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        procs.start("worker-1", [PY, "-m", "flows", "worker", "--name", "mac-1", "--settings", str(settings_file)],
                    env)
        yield {"url": url, "env": env, "tmp": tmp, "shared": shared, "settings": settings_file, "procs": procs,
               "deploy_output": deploy.stdout}
    finally:
        procs.stop()


def _client(url):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        def __enter__(self):
            self._s = temporary_settings({PREFECT_API_URL: url})
            self._s.__enter__()
            self._c = get_client(sync_client=True)
            return self._c.__enter__()

        def __exit__(self, *exc):
            self._c.__exit__(*exc)
            self._s.__exit__(*exc)

    return _Ctx()


def _wait_final(client, run_id, procs: Processes, timeout_s: float = RUN_WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fr = client.read_flow_run(run_id)
        if fr.state is not None and fr.state.is_final():
            return fr
        time.sleep(1)
    pytest.fail(f"flow run {run_id} not finished after {timeout_s} s (state {fr.state}):\n"
                + "\n".join(procs.tail(n) for n in ("worker-1", "worker-2")))


def _log_appears(client, log_filter, needle: str, timeout_s: float = 20) -> bool:
    """Run logs reach the API in batches: wait (bounded) for a line containing `needle`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if any(needle in log.message for log in client.read_logs(log_filter)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def _online(client, pool: str = "apple-silicon") -> int:
    return sum(1 for w in client.read_workers_for_work_pool(pool) if str(w.status).upper().endswith("ONLINE"))


def test_pool_limit_deployments_and_schedule(farm):
    from pipeline.config import load_settings

    d = load_settings(farm["settings"]).deploy
    out = farm["deploy_output"]
    assert f"work pool {d.work_pool!r}" in out and f"limit {d.concurrency_limit!r}" in out
    with _client(farm["url"]) as client:
        pool = client.read_work_pool(d.work_pool)
        assert pool.type == "process"
        limit = client.read_global_concurrency_limit_by_name(d.concurrency_limit)
        assert limit.limit == d.mlx_slots == 1 and limit.active
        dep = client.read_deployment_by_name(f"render-script/{d.render_deployment}")
        assert dep.work_pool_name == d.work_pool and dep.entrypoint == "flows/render.py:render_flow"
        assert dep.job_variables["env"]["READTHROUGH_MLX_GUARD"] == "1"
        assert dep.job_variables["env"]["READTHROUGH_HOME"] == str(farm["shared"])
        schedules = client.read_deployment_schedules(dep.id)
        assert len(schedules) == 1
        sched = schedules[0]
        assert sched.schedule.cron == d.schedule_cron and sched.schedule.timezone == "Europe/Berlin"
        assert sched.active is True
        assert sched.parameters == {"script": d.schedule_script, "out_dir": d.schedule_out_dir,
                                    "settings_file": str(farm["settings"].resolve())}
        cast = client.read_deployment_by_name(f"cast-script/{d.cast_deployment}")
        assert cast.work_pool_name == d.work_pool and not client.read_deployment_schedules(cast.id)
    # the committed prefect.yaml deploys through Prefect's own CLI too (same names, schedule without settings_file)
    yaml_deploy = subprocess.run([PY, "-m", "prefect", "--no-prompt", "deploy", "--all"], env=farm["env"], cwd=REPO,
                                 capture_output=True, text=True, timeout=180)
    assert yaml_deploy.returncode == 0, yaml_deploy.stdout[-3000:] + yaml_deploy.stderr[-3000:]
    with _client(farm["url"]) as client:
        dep = client.read_deployment_by_name(f"render-script/{d.render_deployment}")
        (sched,) = client.read_deployment_schedules(dep.id)
        assert sched.parameters == {"script": d.schedule_script, "out_dir": d.schedule_out_dir}
        assert dep.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] in (
            "{{ $READTHROUGH_CHECKOUT }}", str(REPO))
    # deploying again updates in place: still one schedule
    again = subprocess.run([PY, "-m", "flows", "deploy", "--settings", str(farm["settings"])], env=farm["env"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "exists" in again.stdout
    with _client(farm["url"]) as client:
        dep = client.read_deployment_by_name(f"render-script/{d.render_deployment}")
        (sched,) = client.read_deployment_schedules(dep.id)
        assert sched.parameters["settings_file"] == str(farm["settings"].resolve())
        assert dep.job_variables["env"]["READTHROUGH_HOME"] == str(farm["shared"])


def test_render_script_deployment_with_tiny_models(farm, tiny_models, sample_script):
    pytest.importorskip("pipeline.engines.qwen3")
    out = farm["tmp"] / "out-tiny"
    with _client(farm["url"]) as client:
        dep = client.read_deployment_by_name("render-script/render-script")
        run = client.create_flow_run_from_deployment(dep.id, parameters={
            "script": str(sample_script), "out_dir": str(out), "models_dir": str(tiny_models)})
        fr = _wait_final(client, run.id, farm["procs"])
        assert fr.state.is_completed(), f"{fr.state}\n{farm['procs'].tail('worker-1', 6000)}"
        from prefect.client.schemas.filters import LogFilter

        limit = client.read_global_concurrency_limit_by_name("mlx")
        assert limit.active_slots == 0  # the render held the MLX slot and gave it back
        assert _log_appears(client, LogFilter(flow_run_id={"any_": [run.id]}),
                            "holding one slot of global concurrency limit 'mlx'")
    report = json.loads((out / "render-report.json").read_text())
    assert report["status"] == "completed" and report["engine"]["name"] == "qwen3"
    assert report["line_store"].startswith(str(farm["shared"]))  # READTHROUGH_HOME from the deployment env
    assert report["counts"]["failed"] == 0 and report["counts"]["rendered"] == report["counts"]["lines"] > 0
    assert report["outputs"], report["master_note"]
    for path in report["outputs"].values():
        assert Path(path).is_file() and Path(path).stat().st_size > 0


def test_guard_refuses_real_models_without_metal(farm, sample_script):
    from pipeline.engines.guard import metal_available

    if metal_available():
        pytest.skip("this machine has MLX's Metal backend: the guard lets qwen3 run")
    with _client(farm["url"]) as client:
        dep = client.read_deployment_by_name("cast-script/cast-script")
        run = client.create_flow_run_from_deployment(dep.id, parameters={
            "script": str(sample_script), "engine": "qwen3"})
        fr = _wait_final(client, run.id, farm["procs"])
    assert fr.state.is_failed(), fr.state
    assert "Refusing to run the qwen3 engine" in (fr.state.message or ""), fr.state.message
    assert "allow_cpu_mlx" in fr.state.message


def test_farm_two_workers_every_scene_once(farm, sample_script):
    from pipeline.fountain import read_script
    from pipeline.render import scene_label, spoken_scenes

    procs = farm["procs"]
    procs.start("worker-2", [PY, "-m", "flows", "worker", "--name", "mac-2", "--settings", str(farm["settings"])],
                farm["env"])
    with _client(farm["url"]) as client:  # both workers polling before the farm counts them
        deadline = time.monotonic() + 90
        while _online(client) < 2:
            assert time.monotonic() < deadline, procs.tail("worker-2")
            time.sleep(1)
    lexicon = farm["shared"].parent / "names.toml"  # staged into the shared root for the workers
    lexicon.write_text('Margaret = "Mar-gret"\n')
    res = subprocess.run([PY, "-m", "flows", "farm", str(sample_script), "-o", "farm-out", "--engine", "instant",
                          "--settings", str(farm["settings"]), "--lexicon", str(lexicon)],  # no --shards: one per worker
                         env=farm["env"], cwd=REPO, capture_output=True, text=True, timeout=RUN_WAIT_S + 60)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:] + procs.tail("worker-2")
    report = json.loads((farm["shared"] / "farm-out" / "farm-report.json").read_text())  # relative -o: shared root
    assert "shard 1: scenes" in res.stdout and "shard 2: scenes" in res.stdout

    screenplay = read_script(sample_script)
    labels = [scene_label(screenplay, i) for i in spoken_scenes(screenplay)]
    shard_scenes = [s["scenes"] for s in report["shards"]]
    assert len(shard_scenes) == 2 and all(shard_scenes)
    assert sorted(sum(shard_scenes, [])) == sorted(labels)  # a partition: each scene in exactly one shard
    assert all(s["state"] == "Completed" and s["dispatch_s"] >= 0 and s["run_s"] > 0 for s in report["shards"])
    # each worker (--limit 1) ran one shard: the run's own output streams into the log of the worker running it
    # (both workers may try to claim a run; the server aborts the second claim)
    ran = [{s["flow_run_id"] for s in report["shards"] if f"flow-run/{s['flow_run_id']}" in procs.tail(w, 10**7)}
           for w in ("worker-1", "worker-2")]
    assert all(len(r) == 1 for r in ran) and ran[0] != ran[1], ran

    for shard in report["shards"]:
        sub = json.loads(Path(shard["report"]).read_text())
        assert [s["scene"] for s in sub["scenes"]] == shard["scenes"]
        for s in sub["scenes"]:
            assert s["status"] == "done" and not s["cached"] and s["rendered"] == s["lines"] > 0, s
        assert sub["line_store"].startswith(str(farm["shared"]))
        assert not sub["outputs"]  # shards never build the master
        assert sub["lexicon"]["entries"] == 1 and Path(sub["lexicon"]["sources"][0]).is_relative_to(farm["shared"])
    final = json.loads(Path(report["render_report"]).read_text())
    assert final["status"] == "completed"
    assert all(s["cached"] for s in final["scenes"]) and final["counts"]["rendered"] == 0  # nothing rendered twice
    assert sorted(s["scene"] for s in final["scenes"]) == sorted(labels)
    for path in report["outputs"].values():
        assert Path(path).is_file()
    # the shared line store holds one instant-engine line per line of the script, each rendered by one shard
    sidecars = [json.loads(p.read_text()) for p in (farm["shared"] / "lines").rglob("*.json")]
    instant = [m for m in sidecars if m.get("engine") == "instant"]
    total = sum(json.loads(Path(s["report"]).read_text())["counts"]["rendered"] for s in report["shards"])
    assert len(instant) == total == final["counts"]["lines"] > 0
    assert Path(report["outputs"][next(iter(report["outputs"]))]).parent.is_relative_to(farm["shared"])
