"""`readthrough render`: the render flow with a progress bar, a final summary and a non-zero exit on failures."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flows.cli.options import engine_option
from flows.cli.preflight import MASTER_FORMATS
from pipeline.errors import ReadthroughError, RenderError, SettingsError


def parse_scene_list(text: str | None) -> list[str] | None:
    """"1,3" → ["1", "3"]; "2-4" → ["2", "3", "4"]; scene numbers like "1A" pass through."""
    if not text:
        return None
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        lo, sep, hi = item.partition("-")
        if sep and lo.isdigit() and hi.isdigit():
            if int(lo) > int(hi):
                raise SettingsError(f"--scenes: range {item!r} runs backwards; write it as {hi}-{lo}.")
            out.extend(str(i) for i in range(int(lo), int(hi) + 1))
        else:
            out.append(item)
    return out or None


def prefect_env(verbose: bool) -> None:
    """Offline-friendly Prefect defaults; must run before Prefect is imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "WARNING")


class ProgressView:
    """A rich progress display fed by flow events (flows.reporting.emit): lines (with an ETA) and scenes mixed."""

    def __init__(self, console):
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                                 transient=False)
        self.scenes = self.lines = None
        self.current = ""

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, event: str, p: dict) -> None:
        prog = self.progress
        if event == "plan":
            self.lines = prog.add_task("lines", total=p["lines"])
            self.scenes = prog.add_task("scenes mixed", total=p["scenes"])
        elif self.scenes is None:
            return
        elif event == "scene_start":
            prog.update(self.scenes, description=f"mixing scene {p['scene']}")
        elif event == "line":
            prog.advance(self.lines)
        elif event in ("scene_cached", "scene_done"):
            prog.advance(self.scenes)
        elif event == "master":
            prog.update(self.scenes, description="scenes mixed")


def found_cast_file(script, err: bool = False) -> str | None:
    """`<script>.cast.toml` beside the script when it exists (where `readthrough cast --pick` writes), announced
    (on stderr with `err`, e.g. when stdout is JSON)."""
    from pipeline.castpick import default_cast_file

    path = default_cast_file(script)
    if not path.is_file():
        return None
    click.echo(f"Cast file: {path} (found beside the script)", err=err)
    return str(path)


def show_page(page: Path, open_it: bool) -> None:
    """Name the review page; with --open, open it (a no-op, said once, without a desktop)."""
    if not page.is_file():
        return
    click.echo(f"Review page: {page}")
    if open_it:
        from flows.cli.browser import open_page

        if not open_page(page):
            click.echo("  (--open: no desktop or browser here; open the file yourself)")


def summary_lines(report: dict, wall: float) -> list[str]:
    c = report["counts"]
    lines = [f"Rendered {c['rendered']}, reused {c['reused']}, failed {c['failed']} of {c['lines']} lines; "
             f"{report.get('audio_seconds', 0) / 60:.1f} min of audio; wall time {wall:.1f} s."]
    for name, path in (report.get("outputs") or {}).items():
        lines.append(f"  {name}: {path}")
    if report.get("master_note"):
        lines.append(f"  ({report['master_note']})")
    narration = report.get("narration") or {}
    if narration:
        lines.append(f"  Narration: {narration.get('mode')} ({narration.get('lines', 0)} narrator lines).")
    unused = (report.get("lexicon") or {}).get("unused") or []
    if unused:
        lines.append(f"  Lexicon entries matching no spoken word: {', '.join(unused)} (check the spelling).")
    return lines


def _sealed_report(report_path: Path, key: str | None, wall: float) -> dict:
    """The flow's report with the command's wall time (what the console shows) and, when it completed, what a
    later replay must find unchanged (flows/replay)."""
    from flows import replay
    from pipeline.render_report import load_render_report, save_render_report

    report = load_render_report(report_path)
    report = report.model_copy(update={"flow_seconds": report.wall_seconds, "wall_seconds": round(wall, 3)})
    if key is not None and report.status == "completed" and not report.scenes_requested:
        report = replay.seal(report, key)
    save_render_report(report_path, report)
    _record(report_path.parent, report.script)
    return report.to_json()


def _record(out_dir: Path, script) -> None:
    """`readthrough store prune` must see every report that names a lock (flows/housekeeping)."""
    from flows.housekeeping import record_render
    from pipeline.config import home_dir

    try:
        record_render(home_dir(), out_dir, script)
    except OSError as e:
        click.secho(f"Warning: could not record this render in {home_dir() / 'renders'} ({e}); `store prune` "
                    "will not know its locks are in use.", fg="yellow", err=True)


def _print_failures(report: dict) -> None:
    for f in report.get("failed_lines", []):
        click.echo(f"  FAILED scene {f.get('scene')}, line {f.get('source_line')} {f.get('character')}: "
                   f"“{f.get('text')}” — {f.get('reason')}", err=True)


def _interrupted_line(report: dict | None) -> str:
    if not report:
        return "Interrupted. Run the same command again to resume."
    scenes = report.get("scenes", [])
    done = sum(1 for s in scenes if s.get("status") == "done")
    return (f"Interrupted: {done} of {len(scenes)} scene(s) done, finished lines kept. Run the same command again "
            "to resume.")


def _was_interrupted(exc, report: dict | None) -> bool:
    """The flow stopped for a Ctrl-C: it raised RenderInterrupted, or a Ctrl-C came and the report says
    interrupted (or there is none). A Ctrl-C that came when the render had finished anyway leaves a completed run."""
    from flows import interrupt

    if isinstance(exc, interrupt.RenderInterrupted):
        return True
    return interrupt.requested() and (report is None or report.get("status") == "interrupted")


@click.command(name="render")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: scenes/, the master, cue sheet, subtitles, render-report.json.")
@engine_option()
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with base/ and voice-design/ Qwen3-TTS checkpoints (e.g. from make-tiny-models).")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              help="A TOML settings file (any subset of pipeline/configs/default.toml).")
@click.option("--cast", "cast_file", type=click.Path(exists=True, dir_okay=False),
              help="A cast file pinning voices, descriptions, seeds or auditions.")
@click.option("--lexicon", "lexicon_file", type=click.Path(dir_okay=False),
              help="A TOML file of respellings (Siobhan = \"Shiv-awn\") applied to everything spoken; see "
                   "`readthrough lexicon SCRIPT` for the words to check.")
@click.option("--narration", type=click.Choice(["action", "headings", "none", "all"]),
              help="What the narrator reads (default: narration.mode from settings, itself 'action').")
@click.option("--scenes", "scenes_text", metavar="LIST",
              help="Render only these scenes, e.g. 1,3 or 2-4 (no master).")
@click.option("--format", "formats", multiple=True, type=click.Choice(MASTER_FORMATS, case_sensitive=False),
              help="Master format; repeat for several (default: output.master_formats, i.e. wav). "
                   "mp3 and m4b are encoded by ffmpeg, which must be on PATH.")
@click.option("--force", is_flag=True, help="Ignore task caches and the line store: rerun the casting steps, re-render every line, re-mix.")
@click.option("--quality", type=click.Choice(["draft", "final"]),
              help="draft: the small Base model; final: the big one.")
@click.option("--open", "open_page", is_flag=True,
              help="Open the review page (OUT/index.html) in a browser when done (no-op without a desktop).")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's log lines on the console.")
def command(script, out_dir, engine, models_dir, settings_file, cast_file, lexicon_file, narration, scenes_text,
            formats, force, quality, open_page, verbose):
    """Render SCRIPT (Fountain) into a full-cast, narrated read-through in OUT.

    \b
    What is read: every dialogue line in its character's voice (parentheticals, extensions such as (V.O.) and
    (CONT'D) are direction, never spoken), and by a narrator — a voice of its own, cast like a character — the
    scene headings ("Interior. Lighthouse kitchen. Continuous.") and the action. --narration headings reads only
    the headings, all adds transitions ("Cut to.") and centered text, none reads dialogue only. Long speeches are
    rendered in pieces of at most render.max_chunk_seconds and joined; O.S. lines sound off-screen.

    \b
    OUT/index.html is the review page: the cast with every audition to listen to (and the cast-file snippet
    that pins it), each scene with a player, its lines (click one to play it) and a waveform, and the run facts.
    A cast file `<script>.cast.toml` beside the script is used when --cast is not given.

    \b
    Reruns are cheap: finished lines and scenes are reused from the line store and Prefect's cache
    ($READTHROUGH_HOME); a failed or interrupted run is resumed by running the same command again. A rerun
    where nothing changed (script, settings, cast, code, outputs) is answered from the last report in well
    under a second, without starting Prefect.

    \b
    Ctrl-C stops within seconds: lines finished so far stay in the line store (the batch in flight is dropped),
    render-report.json says what is done (status "interrupted") and the command exits 130; run it again to
    resume. Press Ctrl-C twice to quit at once.

    \b
    Examples:
      readthrough render data/sample.fountain -o out/
      readthrough render script.fountain -o out/ --engine preview --format mp3 --format flac
      readthrough render script.fountain -o out/ --models tiny-models/ --scenes 1,3
      readthrough render script.fountain -o out/ --settings my.toml --cast cast.toml --quality draft
      readthrough render script.fountain -o out/ --narration none --lexicon names.toml
      readthrough render script.fountain -o out/ --force
      readthrough render script.fountain -o out/ --open
    Starts a private Prefect server for the run; set PREFECT_API_URL to record runs on your own server.
    """
    from flows import replay
    from flows.cli import elapsed
    from flows.cli.preflight import master_overrides, preflight
    from pipeline.config import home_dir
    from pipeline.render_report import REPORT_NAME

    prefect_env(verbose)
    overrides = {**({"render.quality": quality} if quality else {}), **master_overrides(formats)}
    if narration:
        overrides["narration.mode"] = narration
    if lexicon_file:
        from pipeline.lexicon import load_lexicon

        load_lexicon(lexicon_file)  # a bad file fails here, before anything runs
    scenes = parse_scene_list(scenes_text)
    cast_file = cast_file or found_cast_file(script)
    pre = preflight(script, engine=engine, models_dir=models_dir, settings_file=settings_file,
                    overrides=overrides, cast_file=cast_file, scenes=scenes)
    for note in pre.warnings:
        click.secho(f"Warning: {note}", fg="yellow", err=True)
    click.echo(f"Engine: {pre.engine} — {pre.reason}")
    report_path = Path(out_dir) / REPORT_NAME
    key = replay.inputs_key(script, pre.settings, pre.engine, models_dir, cast_file, pre.castfile, out_dir,
                            home_dir(), scenes, lexicon_file=lexicon_file)
    if not force and replay.enabled():
        report = replay.replay(report_path, key, wall=elapsed)
        if report is not None:
            click.echo("Nothing changed since the last render (inputs and outputs verified); Prefect not started.")
            for line in summary_lines(report, report["wall_seconds"]):
                click.echo(line)
            show_page(Path(out_dir) / "index.html", open_page)
            return
    _run_flow(script, out_dir, engine, models_dir, settings_file, overrides, cast_file, scenes, force, verbose,
              report_path, key, lexicon_file, open_page)


def _run_flow(script, out_dir, engine, models_dir, settings_file, overrides, cast_file, scenes, force, verbose,
              report_path: Path, key: str, lexicon_file: str | None = None, open_page: bool = False) -> None:
    from rich.console import Console

    from flows import interrupt
    from flows.cli import elapsed
    from flows.server import prefect_api
    from pipeline.config import home_dir

    console = Console(stderr=True)
    notice = lambda: console.print(  # noqa: E731
        "[yellow]Stopping: finished lines are kept… (Ctrl-C again to quit at once)[/yellow]")
    # Ctrl-C handled from before Prefect starts until the report is sealed: never a bare KeyboardInterrupt
    with interrupt.on_sigint(notice) as exits:
        with prefect_api(home_dir()) as server:
            from flows.reporting import listen, quiet_prefect_console
            from flows.render import render_flow
            from flows.states import state_result

            exits.add(server.kill_now if server else None)
            quiet_prefect_console(verbose)
            with ProgressView(console) as view, listen(view):
                state = render_flow(os.fspath(Path(script)), os.fspath(Path(out_dir)), engine=engine or "auto",
                                    models_dir=models_dir, settings_file=settings_file,
                                    overrides=overrides or None, cast_file=cast_file, scenes=scenes, force=force,
                                    lexicon_file=lexicon_file, return_state=True)
            exc = None if state.is_completed() else state_result(state, raise_on_failure=False)
        report = _sealed_report(report_path, key, elapsed()) if report_path.is_file() else None
    if _was_interrupted(exc, report):
        raise interrupt.RenderInterrupted(_interrupted_line(report))
    if exc is not None:
        if isinstance(exc, ReadthroughError) and not isinstance(exc, RenderError):
            raise exc
        if not isinstance(exc, RenderError):
            raise RenderError(f"The render flow ended {state.name}: {state.message}. Rerun with --verbose for "
                              "Prefect's log.")
    if report is None:
        raise RenderError(f"The render flow wrote no report at {report_path}. Rerun with --verbose.")
    for line in summary_lines(report, report["wall_seconds"]):
        click.echo(line)
    show_page(Path(out_dir) / "index.html", open_page)
    if exc is None:
        return
    _print_failures(report)
    if report["counts"]["failed"]:
        raise RenderError(f"{report['counts']['failed']} line(s) failed; the report is {report_path}. "
                          "Run the same command again to retry only what failed.")
    raise RenderError(f"{exc} (report: {report_path})")
