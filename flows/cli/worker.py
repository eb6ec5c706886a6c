"""`readthrough worker`: start a Prefect process worker for the apple-silicon pool with the right environment."""

from __future__ import annotations

import click


def worker_env(environ, checkout: str, *, allow_cpu_mlx: bool = False, home: str | None = None) -> dict[str, str]:
    """The worker's environment: where the checkout is (the deployments' pull step), the guard's flag, the home."""
    from pipeline.engines.guard import ALLOW_ENV
    from flows.deploy import CHECKOUT_ENV

    env = dict(environ)
    env[CHECKOUT_ENV] = checkout
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if allow_cpu_mlx:
        env[ALLOW_ENV] = "1"
    if home:
        env["READTHROUGH_HOME"] = home
    return env


def worker_argv(pool: str, limit: int, name: str | None = None) -> list[str]:
    import sys

    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
            "--limit", str(limit), "--install-policy", "never"]
    if name:
        argv += ["--name", name]
    return argv


@click.command(name="worker")
@click.option("--pool", default=None, help="Work pool to poll (default: deploy.work_pool, `apple-silicon`).")
@click.option("--limit", type=click.IntRange(min=1), default=1, show_default=True,
              help="Concurrent flow runs. Keep 1: one model user (one process, one thread) per Mac.")
@click.option("--name", default=None, help="Worker name shown in the UI (default: Prefect's).")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, exists=True), help="Settings TOML.")
@click.option("--allow-cpu-mlx", is_flag=True,
              help="Let this worker run real Qwen3-TTS models without MLX's Metal backend (CPU: very slow).")
@click.option("--dry-run", is_flag=True, help="Print the command and environment; start nothing.")
def command(pool, limit, name, settings_file, allow_cpu_mlx, dry_run):
    """Start a worker for the pool (needs PREFECT_API_URL: a worker cannot use the ephemeral server).

    \b
    Run one per Mac, from its checkout of this repository (flow runs execute that code):
      export PREFECT_API_URL=http://render-host:4200/api
      readthrough worker
    \b
    With deploy.shared_root set, flow runs use it as the work directory (line store, voice locks).
    """
    import os
    import subprocess
    import sys

    from flows.deploy import REPO, shared_root
    from pipeline.config import load_settings
    from pipeline.errors import SettingsError

    settings = load_settings(settings_file)
    pool = pool or settings.deploy.work_pool
    if limit != 1:
        click.secho(f"Warning: --limit {limit}: several flow runs would load MLX models side by side on this "
                    f"machine; the `mlx` concurrency limit still serialises their GPU work.", fg="yellow", err=True)
    root = shared_root(settings)
    env = worker_env(os.environ, str(REPO), allow_cpu_mlx=allow_cpu_mlx, home=str(root) if root else None)
    argv = worker_argv(pool, limit, name)
    if dry_run:
        click.echo(" ".join(argv))
        for key in ("PREFECT_API_URL", "READTHROUGH_CHECKOUT", "READTHROUGH_HOME", "READTHROUGH_ALLOW_CPU_MLX"):
            if env.get(key):
                click.echo(f"  {key}={env[key]}")
        return
    from prefect.settings import PREFECT_API_URL

    if not (env.get("PREFECT_API_URL") or PREFECT_API_URL.value()):  # env or the active Prefect profile
        raise SettingsError("PREFECT_API_URL is not set: a worker must reach a Prefect server. Export "
                            "PREFECT_API_URL=http://HOST:4200/api (the server `readthrough deploy` used).")
    click.echo(f"Starting a worker on pool {pool!r} (limit {limit}) from {REPO}; Ctrl-C stops it.")
    try:
        sys.exit(subprocess.call(argv, env=env))
    except KeyboardInterrupt:
        sys.exit(130)
