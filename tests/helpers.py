"""Plain helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `readthrough ARGV` in this process: (exit code, stdout, stderr)."""
    from flows.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def render_with_report(script, out, engine: str = "fake", **kw):
    """Run the render flow (returning its state) and read the report it wrote: (state, report dict)."""
    from flows.render import render_flow

    state = render_flow(str(script), str(out), engine=engine, return_state=True, **kw)
    return state, json.loads((Path(out) / "render-report.json").read_text())
