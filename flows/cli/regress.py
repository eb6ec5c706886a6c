"""`readthrough regress SCRIPT -o OUT`: render a reference script and compare its audio with committed goldens."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.options import engine_option


@click.command(name="regress")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Render folder; the regression reports are written here too.")
@click.option("--golden", type=click.Path(file_okay=False, path_type=Path),
              help="Golden folder (default: golden/<script stem>/ beside the script, e.g. data/golden/sample/).")
@click.option("--update", is_flag=True, help="Write this render's fingerprints as the new goldens (then review "
              "and commit them); never fails on differences.")
@engine_option(default="auto")
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with base/, voice-design/, custom-voice/ checkpoints (e.g. from make-tiny-models).")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              help="TOML settings file; [regression] holds the tolerances.")
@click.option("--cast", "cast_file", type=click.Path(exists=True, dir_okay=False),
              help="Cast file pinning voices (seeds, descriptions, locks) for the reference render.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write the JUnit XML report to this file.")
@click.option("--no-speaker", is_flag=True, help="Skip speaker x-vectors (faster; no speaker similarity).")
def command(script: Path, out_dir: Path, golden: Path | None, update: bool, engine: str, models_dir: str | None,
            settings_file: str | None, cast_file: str | None, junit: str | None, no_speaker: bool):
    """Render SCRIPT into OUT and check its audio against golden fingerprints.

    Per line: same (identical samples), within tolerance, changed (which measure, by how much), missing or new;
    per scene: duration and timing; per character: speaker similarity. Exits 1 on any regression and writes
    OUT/regression-report.json, OUT/regression-junit.xml, OUT/regression.md and OUT/regression.html (listen to
    the golden and the new take of each line side by side). Tolerances: [regression] in
    the settings (pipeline/configs/default.toml).

    Each line's seed comes from its content key, which includes the model identity: a hub id, or for a local
    folder (--models DIR) a digest of its contents, so goldens match wherever the checkpoints lie
    (see data/golden/README.md).

    \b
    Examples:
      readthrough make-tiny-models /tmp/tiny
      readthrough regress data/sample.fountain --engine qwen3 --models /tmp/tiny -o /tmp/rg
      readthrough regress data/sample.fountain -o out/regress --update      # new goldens: review, commit
      readthrough regress data/sample.fountain -o out/regress --junit reports/audio.xml
      readthrough regress my.fountain --golden goldens/my --settings ci.toml --cast my.cast.toml -o out/my
    """
    from flows.cli.preflight import preflight
    from flows.cli.render import prefect_env
    from flows.server import prefect_api
    from pipeline.config import home_dir

    prefect_env(False)
    preflight(script, engine=engine, models_dir=models_dir, settings_file=settings_file, cast_file=cast_file)
    with prefect_api(home_dir()):
        from flows.regress import regression_flow
        from flows.reporting import quiet_prefect_console
        from flows.states import state_result
        from pipeline.regression.compare import RegressionFailed

        quiet_prefect_console(False)
        state = regression_flow(
            str(script), str(out_dir), golden_dir=str(golden) if golden else None, update=update, engine=engine,
            models_dir=models_dir, settings_file=settings_file, junit=junit, speaker=not no_speaker,
            cast_file=cast_file, return_state=True,
        )
        result = state_result(state, raise_on_failure=False)
    if isinstance(result, RegressionFailed):
        _show(result.report)
        raise result
    if isinstance(result, BaseException):
        raise result
    if state.is_failed():
        raise click.ClickException(state.message or "the audio-regression flow failed")
    if update:
        click.echo(result["summary"])
        return
    _show(result)


def _show(report: dict) -> None:
    md = Path(report["reports"]["markdown"]).read_text(encoding="utf-8")
    click.echo(md)
    click.echo("Reports: " + ", ".join(v for k, v in report["reports"].items()))
