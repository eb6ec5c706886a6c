"""`readthrough parse`: show what the parser sees in a Fountain script (scenes, characters, evidence, or JSON)."""

from __future__ import annotations

import json

import click


@click.command(name="parse")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON export (docs/fountain-json.md).")
@click.option("--characters", is_flag=True, help="Only the speaking characters, with line counts and cues.")
@click.option("--evidence", is_flag=True, help="Per-character evidence: introduction, age note, mentions, lines.")
def command(file, as_json, characters, evidence):
    """Parse a Fountain screenplay and print its scenes and characters.

    \b
    Examples:
      readthrough parse data/sample.fountain
      readthrough parse data/sample.fountain --characters
      readthrough parse data/sample.fountain --evidence
      readthrough parse data/sample.fountain --json > sample.json
    """
    import warnings

    from pipeline.errors import ScriptError
    from pipeline.fountain import check_screenplay, read_script

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        screenplay = read_script(file)
    for w in caught:
        click.secho(f"Warning: {w.message}", fg="yellow", err=True)
    try:  # parse shows any text (Fountain fragments are valid); cast and render refuse what is not a script
        check_screenplay(screenplay, file)
    except ScriptError as e:
        click.secho(f"Warning: {e}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps(screenplay.to_json(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console()
    if not screenplay.scenes:
        console.print(f"{file}: no scenes (the script is empty or holds only a title page).")
        return
    if evidence:
        _print_evidence(console, screenplay)
    elif characters:
        _print_characters(console, screenplay)
    else:
        _print_scenes(console, screenplay)
        _print_characters(console, screenplay)


def _print_scenes(console, screenplay) -> None:
    from rich.table import Table

    title = screenplay.title_page.get("title")
    table = Table(title=f"{title or screenplay.source} — scenes", title_justify="left")
    for col, kw in (("#", {"justify": "right"}), ("line", {"justify": "right"}), ("heading", {}),
                    ("speeches", {"justify": "right"}), ("characters", {})):
        table.add_column(col, **kw)
    count = 0
    for s in screenplay.scenes:
        count += s.heading is not None
        who = dict.fromkeys(d.character for d in s.dialogues)
        number = s.number or (str(count) if s.heading is not None else "-")
        table.add_row(number, str(s.line), s.heading or "[dim](before the first heading)[/dim]",
                      str(len(s.dialogues)), ", ".join(who))
    console.print(table)


def _print_characters(console, screenplay) -> None:
    from rich.table import Table

    stats: dict[str, list] = {}
    for index, d in screenplay.dialogues():
        st = stats.setdefault(d.character, [0, set(), {}])
        st[0] += len(d.spoken)
        st[1].add(index)
        st[2].setdefault(d.cue, None)
    table = Table(title="characters", title_justify="left")
    for col in ("character", "lines", "scenes", "cues"):
        table.add_column(col, justify="right" if col in ("lines", "scenes") else "left")
    for name, (lines, scenes, cues) in stats.items():
        table.add_row(name, str(lines), str(len(scenes)), ", ".join(cues))
    console.print(table)


def _print_evidence(console, screenplay) -> None:
    from pipeline.evidence import collect_evidence

    for name, ev in collect_evidence(screenplay).items():
        console.rule(f"[bold]{name}[/bold]")
        intro = ev.introduction
        if intro:
            console.print(f"introduced (line {intro.line}): {intro.text}")
            console.print(f"  age: {intro.age_note or '-'}   described as: {', '.join(intro.descriptors) or '-'}")
        else:
            console.print("introduced: [dim]never named in capitals in the action[/dim]")
        console.print(f"lines: {ev.line_count}   parentheticals: {', '.join(ev.parentheticals) or '-'}")
        exts = sorted({e for e in ev.extensions if e})
        console.print(f"extensions: {', '.join(exts) or '-'}   scenes: {len(ev.scenes)}   "
                      f"action mentions: {len(ev.action_mentions)}")
        for line in ev.lines[:3]:
            console.print(f"  [dim]“{line}”[/dim]")
