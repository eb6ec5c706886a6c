"""`readthrough cast`: analyse, design, pick and lock a voice for every speaking character (the cast flow)."""

from __future__ import annotations

import json
import os

import click

from pipeline.engines import engine_choices


def _age(row: dict) -> str:
    age = row.get("age_range")
    return f"{age[0]}–{age[1]}" if age else "?"


@click.command(name="cast")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.option("--engine", default=None, metavar=engine_choices(),
              help="Speech engine (default: render.engine from settings, itself 'auto').")
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with base/ and voice-design/ Qwen3-TTS checkpoints.")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False), help="A TOML settings file.")
@click.option("--cast", "cast_file", type=click.Path(exists=True, dir_okay=False),
              help="A cast file overriding profiles, descriptions, seeds, auditions, locks or presets.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one record per character) instead of a table.")
@click.option("--force", is_flag=True, help="Ignore cached analysis, auditions, picks and locks.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's log lines on the console.")
def command(script, engine, models_dir, settings_file, cast_file, as_json, force, verbose):
    """Cast SCRIPT: per character its profile (gender, age, traits, summary), the voice description, the
    auditions and which one was picked and why, and the voice lock file.

    \b
    Auditions are kept as WAV files ($READTHROUGH_HOME/auditions/<script>/<character>/) so you can listen and
    pin another one in a cast file (`audition = 2`).

    \b
    Examples:
      readthrough cast data/sample.fountain
      readthrough cast data/sample.fountain --json
      readthrough cast script.fountain --models tiny-models/ --cast cast.toml
    """
    from flows.cli.render import engine_line, prefect_env

    prefect_env(verbose)
    name, reason = engine_line(settings_file, None, engine, models_dir)
    click.echo(f"Engine: {name} — {reason}", err=as_json)

    from flows.cast import cast_flow
    from flows.reporting import quiet_prefect_console

    quiet_prefect_console(verbose)
    result = cast_flow(os.fspath(script), engine=name, models_dir=models_dir, settings_file=settings_file,
                       cast_file=cast_file, force=force)
    rows = result["characters"]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Cast of {os.path.basename(script)}", show_lines=True)
    for col in ("character", "gender", "age", "traits", "description", "pick", "lock"):
        table.add_column(col, overflow="fold")
    for r in rows:
        why = r["pick_reason"].split(":")[0]  # the full reason is in --json
        pick = (f"audition {r['audition_index']}: " if r.get("audition_index") is not None else "") + why
        table.add_row(r["name"], str(r.get("gender") or "?"), _age(r), ", ".join(r.get("traits") or ()),
                      r["description"], pick, os.path.basename(r["lock_path"]))
    console = Console()
    console.print(table)
    locks = {os.path.dirname(os.path.dirname(r["lock_path"])) for r in rows}
    console.print(f"Locks under {', '.join(sorted(locks))}; full pick reasons and audition files: --json.")
