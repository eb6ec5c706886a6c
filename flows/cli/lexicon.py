"""`readthrough lexicon`: the words of a script most likely to need a respelling, and which are in the lexicon."""

from __future__ import annotations

import json

import click


@click.command(name="lexicon")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.option("--lexicon", "lexicon_file", type=click.Path(dir_okay=False),
              help="A lexicon TOML file (word = \"respelling\"); its words are marked.")
@click.option("--cast", "cast_file", type=click.Path(exists=True, dir_okay=False),
              help="A cast file; the words of its [lexicon] table are marked.")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              help="A TOML settings file ([narration] mode decides which narration is spoken).")
@click.option("--limit", type=click.IntRange(min=1), default=40, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one record per word) instead of a table.")
def command(script, lexicon_file, cast_file, settings_file, limit, as_json):
    """List the words of SCRIPT most likely to need a respelling: character names, capitalised words that are not
    sentence starts, and unusual spellings — with how often each is spoken (dialogue and narration), most
    frequent first. Words already in the lexicon are marked.

    \b
    Qwen3-TTS takes neither IPA nor SSML: a respelling is ordinary letters, e.g.
      Siobhan = "Shiv-awn"
      Reyes = "Ray-ess"
    in a TOML file passed to `readthrough render --lexicon FILE`, or in the cast file's [lexicon] table. Entries
    match whole words in any case; changing one re-renders exactly the lines that contain its word.

    \b
    Examples:
      readthrough lexicon data/sample.fountain
      readthrough lexicon script.fountain --lexicon names.toml
      readthrough lexicon script.fountain --json
    """
    from pipeline.castfile import load_cast_file
    from pipeline.config import load_settings
    from pipeline.fountain import read_script
    from pipeline.lexicon import EMPTY_LEXICON, candidates, load_lexicon

    settings = load_settings(settings_file)
    screenplay = read_script(script)
    lexicon = load_cast_file(cast_file, screenplay.characters()).lexicon if cast_file else EMPTY_LEXICON
    if lexicon_file:
        lexicon = lexicon.merged(load_lexicon(lexicon_file))
    found = candidates(screenplay, lexicon, settings.narration.mode, limit=limit)
    if as_json:
        click.echo(json.dumps([c.to_json() for c in found], indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Words to check in {script}")
    for col in ("word", "count", "why", "in lexicon"):
        table.add_column(col)
    for c in found:
        table.add_row(c.word, str(c.count), ", ".join(c.reasons), "yes" if c.in_lexicon else "")
    console = Console()
    console.print(table)
    if not found:
        console.print("No candidates: every spoken word looks ordinary.")
    console.print('Add respellings to a TOML file (Word = "respelling") and pass it with render --lexicon FILE.')
