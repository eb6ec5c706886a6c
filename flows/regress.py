"""The `audio-regression` flow: render a reference script, fingerprint the render, compare with committed goldens.

The render runs as the render flow's plain function inside this flow run (`render_flow.fn`), not as a subflow: its
scene tasks attach to this run, and no second flow run is paid for (a subflow costs ≈1.2 s here, a task ≈40 ms; see
../shared/notes/prefect.md). Fingerprinting and comparison are two uncached tasks — cheap, and they must always see
the files on disk now.

Outputs in the render folder: `regression-report.json`, `regression-junit.xml`, `regression.md`, `regression.html`
(players for the golden and the new take per line, pipeline.regression_page); a Prefect markdown
artifact with the summary. The flow returns the report JSON, and ends Failed (its data a RegressionFailed carrying
the same JSON) when any line changed, went missing or is new.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from flows.reporting import artifact_key
from pipeline.errors import RegressionError, RenderError
from pipeline.files import atomic_write_json, atomic_write_text
from pipeline.regression.compare import RegressionFailed, RegressionReport, compare
from pipeline.regression.golden import Golden, default_golden_dir, fingerprint_render, load_golden, save_golden
from pipeline.regression.report import summary_line, to_junit_xml, to_markdown
from pipeline.regression_page import PAGE_NAME

REPORT_JSON = "regression-report.json"
JUNIT_XML = "regression-junit.xml"
SUMMARY_MD = "regression.md"
PAGE_HTML = PAGE_NAME  # regression.html


@task(name="fingerprint-render", cache_policy=NO_CACHE, persist_result=False)
def fingerprint_task(out_dir: str, store_root: str | None, spec, speaker: bool = True) -> Golden:
    """Fingerprints of the render in `out_dir`; lines from the LineStore, x-vectors from the run's engine."""
    from flows.tasks import get_engine
    from pipeline.store import LineStore

    store = LineStore(store_root) if store_root else None
    engine = get_engine(spec.engine, spec.settings, spec.models_dir) if speaker else None
    return fingerprint_render(out_dir, store=store, engine=engine, script=spec.script_name)


@task(name="compare-goldens", cache_policy=NO_CACHE, persist_result=False)
def compare_task(golden: Golden, current: Golden, settings) -> RegressionReport:
    return compare(golden, current, settings.regression)


def write_reports(report: RegressionReport, out_dir: Path, junit: str | None = None,
                  data: dict[str, Any] | None = None) -> tuple[dict[str, str], str]:
    """JSON (`data`, else `report.to_dict()`), JUnit XML and markdown beside the render (and the JUnit XML also at
    `junit`), atomically. Returns (the paths written, the markdown)."""
    paths = {"json": out_dir / REPORT_JSON, "junit": out_dir / JUNIT_XML, "markdown": out_dir / SUMMARY_MD}
    xml = to_junit_xml(report)
    atomic_write_json(paths["json"], report.to_dict() if data is None else data)
    atomic_write_text(paths["junit"], xml)
    markdown = to_markdown(report)
    atomic_write_text(paths["markdown"], markdown)
    if junit:
        paths["junit_copy"] = Path(junit)
        atomic_write_text(junit, xml)
    return {k: str(v) for k, v in paths.items()}, markdown


def write_page(out: Path, report: RegressionReport, golden: Golden, current: Golden,
               store_root: str | None) -> Path | None:
    """regression.html with players (pipeline.regression_page); a page problem never changes the verdict."""
    from pipeline.regression_page import write_regression_page
    from pipeline.store import LineStore

    try:
        return write_regression_page(out, report, golden, current, LineStore(store_root) if store_root else None)
    except Exception:  # noqa: BLE001
        get_run_logger().warning("could not write %s", out / PAGE_HTML, exc_info=True)
        return None


def _render_error_junit(script_name: str, message: str) -> str:
    """A JUnit report with one errored testcase, so CI shows why there was nothing to compare."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name=f"audio-regression {script_name}", tests="1", failures="0", errors="1")
    suite = ET.SubElement(root, "testsuite", name=f"{script_name}.render", tests="1", failures="0", errors="1")
    case = ET.SubElement(suite, "testcase", classname=f"{script_name}.render", name="render")
    ET.SubElement(case, "error", message=message[:500], type="RenderError").text = message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _artifact(script_name: str, markdown: str, description: str) -> None:
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=artifact_key("audio-regression", script_name),
                                 description=description)
    except Exception:  # noqa: BLE001 — a reporting problem never changes the verdict
        get_run_logger().warning("could not create the regression artifact", exc_info=True)


@flow(name="audio-regression", log_prints=False)
def regression_flow(script: str, out_dir: str, golden_dir: str | None = None, update: bool = False,
                    engine: str = "auto", models_dir: str | None = None, settings_file: str | None = None,
                    overrides: dict[str, Any] | None = None, junit: str | None = None,
                    speaker: bool = True, cast_file: str | None = None) -> dict:
    """Render SCRIPT into OUT_DIR, fingerprint it and compare with the goldens (default `golden/<stem>/` beside the
    script). With `update`, write the fingerprints as the new goldens instead (and report what changed)."""
    from flows.cast import make_spec
    from flows.render import render_flow

    logger = get_run_logger()
    out = Path(out_dir).expanduser().resolve()
    golden = Path(golden_dir) if golden_dir else default_golden_dir(script)
    overrides = {**(overrides or {}), "output.master": True}  # the cue sheet comes with the master
    spec, _ = make_spec(script, engine, models_dir, settings_file, overrides)
    expected = None if update else load_golden(golden)  # fail fast, before a long render, when goldens are absent
    for stale in (REPORT_JSON, SUMMARY_MD, JUNIT_XML, PAGE_HTML):  # never leave an earlier verdict beside this render
        (out / stale).unlink(missing_ok=True)
    try:
        render = render_flow.fn(os.fspath(script), str(out), engine=spec.engine, models_dir=models_dir,
                                settings_file=settings_file, overrides=overrides, cast_file=cast_file)
    except RenderError as e:
        message = f"The render of {script} failed, so nothing was compared: {e}"
        xml = _render_error_junit(spec.script_name, message)
        atomic_write_text(out / JUNIT_XML, xml)
        if junit:
            atomic_write_text(junit, xml)
        raise RenderError(message) from None

    current = fingerprint_task(str(out), render.get("line_store"), spec, speaker)
    if update:
        return _update(golden, current, spec, out, junit, render.get("line_store"))
    report = compare_task(expected, current, spec.settings)
    data = report.to_dict()
    paths, markdown = write_reports(report, out, junit, data)
    page = write_page(out, report, expected, current, render.get("line_store"))
    if page:
        paths["html"] = str(page)
    summary = summary_line(report)
    _artifact(spec.script_name, markdown, summary)
    result = {**data, "reports": paths, "golden": str(golden)}
    logger.info(summary)
    if not report.ok:
        return Failed(message=summary, data=RegressionFailed(summary, result))
    return result


def _update(golden: Path, current: Golden, spec, out: Path, junit: str | None, store_root: str | None = None
            ) -> dict:
    """Write the new goldens; when old ones exist, report (never fail on) what changed, for the review."""
    previous = None
    try:
        previous = load_golden(golden)
    except RegressionError:  # a missing or stale golden is exactly what --update fixes
        pass
    path = save_golden(golden, current)
    result: dict[str, Any] = {"updated": str(path), "golden": str(golden), "lines": len(current.lines),
                              "scenes": len(current.scenes), "ok": True}
    if previous is not None:
        report = compare(previous, current, spec.settings.regression)
        result["reports"], _ = write_reports(report, out, junit)
        page = write_page(out, report, previous, current, store_root)
        if page:
            result["reports"]["html"] = str(page)
        result["changes"] = report.counts()
        markdown = to_markdown(report, title=f"# Audio regression goldens updated: {spec.script_name}\n\n`{path}`; "
                               "changes against the previous goldens (review them before committing):")
    else:
        markdown = f"# Audio regression goldens created: {spec.script_name}\n\n`{path}`: {len(current.lines)} lines, " \
                   f"{len(current.scenes)} scenes. Review and commit them.\n"
    atomic_write_text(out / SUMMARY_MD, markdown)
    result["summary"] = markdown
    _artifact(spec.script_name, markdown, f"goldens updated for {spec.script_name}")
    get_run_logger().info("goldens written to %s (%d lines)", path, len(current.lines))
    return result
