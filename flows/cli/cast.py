"""`readthrough cast`: analyse, design, pick and lock a voice for every speaking character (the cast flow)."""

from __future__ import annotations

import json
import os

import click

from flows.cli.options import engine_option


def _age(row: dict) -> str:
    age = row.get("age_range")
    return f"{age[0]}–{age[1]}" if age else "?"


def variants_lines(row: dict) -> list[str]:
    """One line per delivery variant: class, lines, and its similarity to the neutral voice (or why none)."""
    out = []
    for v in row.get("variants") or ():
        n = f"{v['lines']} line{'s' if v['lines'] != 1 else ''}"
        if v.get("status") == "locked":
            sim = f"{v['similarity']:.2f}" if v.get("similarity") is not None else "n/a"
            out.append(f"{v['delivery']} ({n}): audition {v['chosen']}, similarity {sim}")
        else:
            out.append(f"{v['delivery']} ({n}): {v['reason'].split(';')[0]}")
    return out


def write_picks(script, picks, cast_file, settings_file, quiet: bool) -> str:
    """Check every NAME=INDEX against the script and the audition count, then pin them in the cast file."""
    from pipeline.castpick import default_cast_file, parse_pick, write_picks as pin
    from pipeline.config import home_dir, load_settings
    from pipeline.files import slug
    from pipeline.fountain import read_script

    characters = read_script(script).characters()
    n = load_settings(settings_file).casting.auditions
    folder = home_dir() / "auditions" / os.path.splitext(os.path.basename(script))[0]
    available = {c: sorted(int(p.stem.split("-")[-1]) for p in (folder / slug(c)).glob("audition-*.wav"))
                 for c in characters}
    chosen = [parse_pick(p, characters, n, available) for p in picks]
    path = pin(cast_file or default_cast_file(script), chosen, characters)
    for p in chosen:
        click.echo(f"Picked audition {p.index} for {p.name} in {path}.", err=quiet)
    return str(path)


@click.command(name="cast")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@engine_option()
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with base/ and voice-design/ Qwen3-TTS checkpoints.")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False), help="A TOML settings file.")
@click.option("--cast", "cast_file", type=click.Path(exists=True, dir_okay=False),
              help="A cast file overriding profiles, descriptions, seeds, auditions, locks or presets.")
@click.option("--pick", "picks", multiple=True, metavar="NAME=INDEX",
              help="Keep audition INDEX for NAME: writes `audition = INDEX` into the cast file (--cast, else "
                   "<script>.cast.toml beside the script), keeping its comments and other keys; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one record per character) instead of a table.")
@click.option("--force", is_flag=True, help="Ignore cached analysis, auditions, picks and locks.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's log lines on the console.")
def command(script, engine, models_dir, settings_file, cast_file, picks, as_json, force, verbose):
    """Cast SCRIPT: per character its profile (gender, age, traits, summary), the voice description, the
    auditions and which one was picked and why, the voice lock file, and its delivery variants (a variant voice per
    delivery such as shouting or whispering used in at least `[delivery] min_lines` lines, with its speaker
    similarity to the neutral voice, or why it was not made).

    \b
    Auditions are kept as WAV files ($READTHROUGH_HOME/auditions/<script>/<character>/) so you can listen and
    pin another one in a cast file (`audition = 2`), or let `--pick NAME=2` write it; the render's review page
    (OUT/index.html) plays them all and shows the command for each.

    \b
    Examples:
      readthrough cast data/sample.fountain
      readthrough cast data/sample.fountain --json
      readthrough cast script.fountain --models tiny-models/ --cast cast.toml
      readthrough cast data/sample.fountain --pick MARGARET=2       # writes data/sample.cast.toml
    """
    from flows import interrupt
    from flows.cli.preflight import preflight
    from flows.cli.render import prefect_env
    from flows.server import prefect_api
    from pipeline.config import home_dir

    prefect_env(verbose)
    if picks:
        cast_file = write_picks(script, picks, cast_file, settings_file, as_json)
    else:
        from flows.cli.render import found_cast_file

        cast_file = cast_file or found_cast_file(script, err=as_json)
    pre = preflight(script, engine=engine, models_dir=models_dir, settings_file=settings_file, cast_file=cast_file)
    for note in pre.warnings:
        click.secho(f"Warning: {note}", fg="yellow", err=True)
    click.echo(f"Engine: {pre.engine} — {pre.reason}", err=as_json)

    notice = lambda: click.secho("Stopping after the character in flight… (Ctrl-C again to quit at once)",  # noqa: E731
                                 fg="yellow", err=True)
    with interrupt.on_sigint(notice) as exits, prefect_api(home_dir()) as server:  # Ctrl-C handled from the start
        from flows.cast import cast_flow
        from flows.reporting import quiet_prefect_console
        from flows.states import state_result

        exits.add(server.kill_now if server else None)
        quiet_prefect_console(verbose)
        state = cast_flow(os.fspath(script), engine=engine or "auto", models_dir=models_dir,
                          settings_file=settings_file, cast_file=cast_file, force=force, return_state=True)
        result = state_result(state, raise_on_failure=False)
    if isinstance(result, interrupt.RenderInterrupted) or interrupt.requested():
        raise interrupt.RenderInterrupted("Interrupted: the characters cast so far are kept. Run the same command "
                                          "again to resume.")
    if isinstance(result, BaseException):
        raise result
    rows = result["characters"]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console()
    console.print(cast_table(rows, os.path.basename(script)))
    with_variants = [r for r in rows if r.get("variants")]
    if with_variants:
        console.print("Delivery variants (similarity to the neutral voice):")
        for r in with_variants:
            for line in variants_lines(r):
                console.print(f"  {r['name']}: {line}", highlight=False)
    locks = {os.path.dirname(os.path.dirname(r["lock_path"])) for r in rows}
    console.print(f"Locks under {', '.join(sorted(locks))}; traits, full pick reasons, audition and lock files: "
                  "--json.")


def cast_table(rows: list[dict], title: str):
    """Character, who (gender, age), voice description and pick: fits 80 columns, wrapping on word boundaries
    (only a single word wider than its column is ever cut); the rest is in --json."""
    from rich.table import Table

    table = Table(title=f"Cast of {title}", show_lines=True, expand=False)
    table.add_column("character", overflow="fold", max_width=16)
    table.add_column("who", overflow="fold", max_width=9)
    table.add_column("voice", overflow="fold", ratio=1)
    table.add_column("pick", overflow="fold", max_width=14)
    for r in rows:
        why = r["pick_reason"].split(":")[0]  # the full reason is in --json
        pick = (f"audition {r['audition_index']}: " if r.get("audition_index") is not None else "") + why
        table.add_row(r["name"], f"{r.get('gender') or '?'}\n{_age(r)}", r["description"], pick)
    return table
