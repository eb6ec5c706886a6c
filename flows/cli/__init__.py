"""The `readthrough` command line. Each sub-command lives in its own module in this package.

Run `readthrough COMMAND --help` for examples.
"""

from __future__ import annotations

import importlib
import sys
import time

_STARTED = time.perf_counter()  # the command's own clock: the wall time the console and the report show

import click  # noqa: E402

from pipeline.errors import ReadthroughError  # noqa: E402


def elapsed() -> float:
    """Seconds since this command started (the interpreter's own start-up excepted)."""
    return time.perf_counter() - _STARTED

# command name -> module in this package defining a click command called `command`
COMMANDS = {
    "parse": "parse",
    "cast": "cast",
    "render": "render",
    "voices": "voices",
    "make-tiny-models": "models",
    "regress": "regress",
    "deploy": "deploy",
    "worker": "worker",
    "farm": "farm",
    "lexicon": "lexicon",
    "store": "store",
}


class LazyGroup(click.Group):
    """Imports a sub-command's module only when it runs (Prefect and MLX are slow to import)."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        module = COMMANDS.get(name)
        if module is None:
            return None
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{module}":
                return None
            raise
        return mod.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="readthrough")
def cli():
    """readthrough: a Fountain screenplay in, a full-cast audio read-through out.

    \b
    Quick start (works on any machine, no model download):
      readthrough render data/sample.fountain -o out/
    Inspect a script:
      readthrough parse data/sample.fountain
    Real Qwen3-TTS voices on a Mac: see README.md.

    The work directory (line store, voice locks) is $READTHROUGH_HOME, default ~/.readthrough.
    """


def _verbose(argv) -> bool:
    args = sys.argv[1:] if argv is None else argv
    return any(a in ("-v", "--verbose") for a in args)


def main(argv=None):
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry notice, no DNS look-up:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # the server's analytics and the client SDK's, for our processes
    try:
        cli.main(args=argv, standalone_mode=False)
    except ReadthroughError as e:
        from flows.interrupt import RenderInterrupted

        if isinstance(e, RenderInterrupted):
            click.secho(str(e), fg="yellow", err=True)
        else:
            click.secho(f"Error: {e}", fg="red", err=True)
        if getattr(e, "detail", None):
            if _verbose(argv):
                click.echo(f"Details: {e.detail}", err=True)
            else:
                click.echo("(run with -v for the underlying error)", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
