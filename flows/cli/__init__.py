"""The `readthrough` command line. Each sub-command lives in its own module in this package.

Run `readthrough COMMAND --help` for examples.
"""

from __future__ import annotations

import importlib
import sys

import click

from pipeline.errors import ReadthroughError

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


def main(argv=None):
    try:
        cli.main(args=argv, standalone_mode=False)
    except ReadthroughError as e:
        click.secho(f"Error: {e}", fg="red", err=True)
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
