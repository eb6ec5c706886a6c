"""Reporting: Prefect artifacts (cast table, render progress, links to outputs) and in-process progress events.

Progress events let the CLI draw a rich progress bar while the flow runs in the same process (Prefect's ephemeral
mode or a local run against a server): tasks call `emit(...)`, listeners registered with `listen(...)` receive
`(event, payload)`. Artifact calls never fail a run: a reporting problem is logged and ignored.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any, Callable, Iterator

Listener = Callable[[str, dict], None]
_LISTENERS: list[Listener] = []
log = logging.getLogger("readthrough.reporting")


@contextlib.contextmanager
def listen(listener: Listener) -> Iterator[None]:
    """Receive progress events while the block runs."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def emit(event: str, **payload: Any) -> None:
    """Send one event to every listener. Events: engine, plan, scene_start, line, scene_done, master, done."""
    for listener in list(_LISTENERS):
        try:
            listener(event, payload)
        except Exception:  # noqa: BLE001 — a broken progress bar must not break a render
            log.debug("progress listener failed", exc_info=True)


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100] or "readthrough"


def _safe(fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001
        log.warning("could not create a Prefect artifact", exc_info=True)
        return None


def cast_table_artifact(script_name: str, rows: list[dict]) -> None:
    """Table: character, profile summary, voice description, pick reason, lock file."""
    from prefect.artifacts import create_table_artifact

    table = [{
        "character": r.get("name", ""),
        "gender": r.get("gender", ""),
        "age": "–".join(str(a) for a in r["age_range"]) if r.get("age_range") else "",
        "summary": r.get("summary", ""),
        "description": r.get("description", ""),
        "pick": r.get("pick_reason", ""),
        "lock": r.get("lock_path", ""),
        "variants": "; ".join(f"{v['delivery']} {v['status']}" + (
            f" (similarity {v['similarity']:.2f})" if v.get("similarity") is not None else "")
            for v in r.get("variants") or ()),
    } for r in rows]
    _safe(create_table_artifact, table=table, key=artifact_key("cast", script_name),
          description=f"Cast of {script_name}")


class ProgressArtifact:
    """A Prefect progress artifact updated at most every `every` seconds (each update is an API call)."""

    def __init__(self, total: int, description: str, every: float = 2.0):
        from prefect.artifacts import create_progress_artifact

        self.total = max(total, 1)
        self.done = 0
        self.every = every
        self._last = time.monotonic()
        self.id = _safe(create_progress_artifact, progress=0.0, description=description)

    def advance(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if self.id is None or (not force and now - self._last < self.every and self.done < self.total):
            return
        from prefect.artifacts import update_progress_artifact

        self._last = now
        _safe(update_progress_artifact, artifact_id=self.id, progress=100.0 * min(self.done, self.total) / self.total)


def outputs_markdown(report: dict) -> str:
    """Markdown for the outputs artifact: counts, master and deliverables, per-scene files and failures."""
    c = report.get("counts", {})
    lines = [f"# Read-through of {report.get('script', '')}", "",
             f"Engine **{report.get('engine', {}).get('engine', '?')}** — lines {c.get('lines', 0)}, rendered "
             f"{c.get('rendered', 0)}, reused {c.get('reused', 0)}, failed {c.get('failed', 0)}.", ""]
    outputs = report.get("outputs") or {}
    if outputs:
        lines += ["## Deliverables", ""]
        lines += [f"- {name}: [{path}](file://{path})" for name, path in outputs.items() if path]
        lines.append("")
    lines += ["## Scenes", "", "| scene | heading | status | file |", "|---|---|---|---|"]
    for s in report.get("scenes", []):
        path = s.get("path") or ""
        link = f"[{path}](file://{path})" if path else ""
        lines.append(f"| {s.get('scene')} | {s.get('heading') or ''} | {s.get('status')} | {link} |")
    failed = [f for s in report.get("scenes", []) for f in s.get("failed_lines", [])]
    if failed:
        lines += ["", "## Failed lines", ""]
        lines += [f"- scene {f.get('scene')}, line {f.get('source_line')} {f.get('character')}: "
                  f"“{f.get('text')}” — {f.get('reason')}" for f in failed]
    return "\n".join(lines) + "\n"


def outputs_artifact(report: dict) -> None:
    from prefect.artifacts import create_markdown_artifact

    _safe(create_markdown_artifact, markdown=outputs_markdown(report),
          key=artifact_key("render", report.get("script_name", "script")), description="Render outputs")


def quiet_prefect_console(verbose: bool = False) -> None:
    """Hide Prefect's console log lines (the API/UI still gets them) unless `verbose`."""
    if verbose:
        return
    import prefect.logging.configuration  # noqa: F401  (ensures Prefect's logging is configured)

    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.server", "prefect.events",
                 "prefect._internal", "uvicorn", "docket", "prefect.client"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not _is_api_handler(handler):
                handler.setLevel(logging.CRITICAL + 1)


def _is_api_handler(handler: logging.Handler) -> bool:
    return type(handler).__name__ in ("APILogHandler", "WorkerAPILogHandler")
