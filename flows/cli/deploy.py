"""`readthrough deploy`: create the work pool, the `mlx` concurrency limit, the deployments and the nightly
schedule on the Prefect server named by PREFECT_API_URL — every name from the [deploy] settings."""

from __future__ import annotations

import click


@click.command(name="deploy")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, exists=True),
              help="Settings TOML ([deploy] section: pool, limit, deployment names, schedule, env, shared root).")
@click.option("--dry-run", is_flag=True, help="Print what would be created; contact no server.")
@click.option("--write-prefect-yaml", type=click.Path(dir_okay=False), default=None,
              help="Also write the equivalent prefect.yaml (for `prefect deploy --all`) to this path.")
def command(settings_file, dry_run, write_prefect_yaml):
    """Register readthrough's deployments on a Prefect server.

    \b
    Creates (or updates) on $PREFECT_API_URL:
      - the process work pool `apple-silicon` (deploy.work_pool)
      - the global concurrency limit `mlx` with deploy.mlx_slots slots (one GPU user each)
      - deployments render-script, cast-script, audio-regression, run from each worker's checkout
      - a nightly Cron schedule on render-script (deploy.schedule_*) with its parameters
    \b
    Examples:
      prefect server start &                 # or any reachable server
      export PREFECT_API_URL=http://127.0.0.1:4200/api
      readthrough deploy --dry-run
      readthrough deploy --settings studio.toml
      readthrough worker                     # on every Mac of the pool
    """
    from pathlib import Path

    from flows.deploy import apply, deployment_specs, describe_plan, render_prefect_yaml
    from pipeline.config import load_settings

    settings = load_settings(settings_file)
    settings_arg = str(Path(settings_file).resolve()) if settings_file else None
    if write_prefect_yaml:
        Path(write_prefect_yaml).write_text(render_prefect_yaml(settings), encoding="utf-8")
        click.echo(f"wrote {write_prefect_yaml}")
    if dry_run:
        click.echo("Dry run — would create or update:")
        for line in describe_plan(settings, deployment_specs(settings, settings_arg)):
            click.echo(f"  {line}")
        return
    from prefect.settings import PREFECT_API_URL

    result = apply(settings, settings_arg)
    click.echo(f"On {PREFECT_API_URL.value()}:")
    for line in result.actions:
        click.echo(f"  {line}")
    click.echo(f"Next: on each Mac, `readthrough worker --pool {settings.deploy.work_pool}`; then "
               f"`prefect deployment run render-script/{settings.deploy.render_deployment} "
               f"--param script=data/sample.fountain --param out_dir=renders/sample`.")
