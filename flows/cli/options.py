"""Options shared by several commands, so every command offers the same choices in the same words."""

from __future__ import annotations

import click


class EngineChoice(click.Choice):
    """`auto` plus the engine registry's names, read when the option is parsed or its help shown (so an engine
    registered later, e.g. a test's fake, is a valid choice too)."""

    def __init__(self):
        super().__init__([], case_sensitive=False)

    @property
    def choices(self):  # type: ignore[override]
        from flows.cli.preflight import engine_choices

        return tuple(engine_choices())

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns it
        pass


def engine_option(default: str | None = None):
    """`--engine` with the registry's names plus `auto`, listed in --help the same way on every command."""
    return click.option(
        "--engine", default=default, type=EngineChoice(), show_default=default is not None,
        help="Speech engine: auto picks qwen3 when its models are here, else preview (espeak-ng); instant is for "
             "tests and benches." + ("" if default else " Default: render.engine from settings, itself 'auto'."))
