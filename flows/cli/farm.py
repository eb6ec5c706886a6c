"""`readthrough farm`: render one script across every worker of the pool (cast once, a shard of scenes per worker,
one master) with the line store and outputs on `deploy.shared_root`. See docs/deploy.md."""

from __future__ import annotations

import click

from flows.cli.options import engine_option


@click.command(name="farm")
@click.argument("script", type=click.Path(dir_okay=False, exists=True))
@click.option("-o", "--out", "out_dir", required=True,
              help="Output folder; a relative path is inside deploy.shared_root.")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, exists=True), required=True,
              help="Settings TOML with [deploy] shared_root (the folder every Mac mounts).")
@engine_option(default="auto")
@click.option("--models", "models_dir", type=click.Path(file_okay=False), default=None,
              help="Local checkpoints folder (must exist at this path on every worker).")
@click.option("--cast", "cast_file", type=click.Path(dir_okay=False, exists=True), default=None, help="Cast file.")
@click.option("--lexicon", "lexicon_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A TOML file of respellings, as for `readthrough render --lexicon`.")
@click.option("--narration", type=click.Choice(["action", "headings", "none", "all"]),
              help="What the narrator reads, as for `readthrough render --narration`.")
@click.option("--shards", type=click.IntRange(min=0), default=0, show_default=True,
              help="Number of shards; 0 = deploy.farm_shards, else one per online worker.")
@click.option("--force", is_flag=True, help="Ignore task caches (rendered lines in the store are still reused).")
def command(script, out_dir, settings_file, engine, models_dir, cast_file, lexicon_file, narration, shards, force):
    """Render SCRIPT on the farm: every Mac running `readthrough worker` takes a shard of scenes.

    \b
    Needs PREFECT_API_URL (the server `readthrough deploy` used) and deploy.shared_root mounted here too.
    Example:
      readthrough farm pilot.fountain -o renders/pilot --settings studio.toml
    """
    from pathlib import Path

    from flows.farm import farm_flow
    from prefect.settings import PREFECT_API_URL
    from pipeline.errors import SettingsError

    if lexicon_file:
        from pipeline.lexicon import load_lexicon

        load_lexicon(lexicon_file)  # a bad file fails here, before any shard is dispatched
    if not PREFECT_API_URL.value():
        raise SettingsError("PREFECT_API_URL is not set: farm mode dispatches shards to workers through a Prefect "
                            "server. Export PREFECT_API_URL=http://HOST:4200/api.")
    report = farm_flow(script=str(Path(script).resolve()), out_dir=out_dir, engine=engine,
                       models_dir=str(Path(models_dir).resolve()) if models_dir else None,
                       settings_file=str(Path(settings_file).resolve()), cast_file=cast_file, shards=shards,
                       force=force, lexicon_file=lexicon_file,
                       overrides={"narration.mode": narration} if narration else None)
    for shard in report["shards"]:
        timing = (f", started {shard['dispatch_s']:.1f} s after dispatch, ran {shard.get('run_s', 0):.1f} s"
                  if "dispatch_s" in shard else "")
        click.echo(f"shard {shard['shard']}: scenes {', '.join(shard['scenes'])} — {shard['state']} "
                   f"({shard['flow_run_name']}{timing})")
    for name, path in report.get("outputs", {}).items():
        click.echo(f"{name}: {path}")
    if report.get("master_note"):
        click.echo(report["master_note"])
    click.echo(f"farm report: {Path(report['render_report']).with_name('farm-report.json')} "
               f"({report.get('wall_seconds', 0):.1f} s)")
