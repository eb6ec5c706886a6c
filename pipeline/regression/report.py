"""A regression report as JUnit XML, a one-line summary and a markdown table."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .compare import FAILING, RegressionReport, SpeakerVerdict




# ----------------------------------------------------------------------------------------------------- reports


def to_junit_xml(report: RegressionReport) -> str:
    """JUnit XML for CI systems: a suite of one testcase per line, one of scenes, one of speakers. Changed, missing
    and new lines are failures whose message says why."""
    root = ET.Element("testsuites", name=f"audio-regression {report.script}")
    suites = [
        ("lines", [(f"scene{v.scene}", v.id, v) for v in report.lines]),
        ("scenes", [("scenes", f"scene {v.index}: {v.heading}", v) for v in report.scenes]),
        ("speakers", [("speakers", v.character, v) for v in report.speakers]),
    ]
    total = failed = 0
    for suite_name, cases in suites:
        suite = ET.SubElement(root, "testsuite", name=f"{report.script}.{suite_name}", tests=str(len(cases)))
        n_fail = 0
        for classname, name, v in cases:
            case = ET.SubElement(suite, "testcase", classname=f"{report.script}.{classname}", name=name)
            if isinstance(v, SpeakerVerdict):
                bad, message = not v.ok, f"speaker similarity {v.similarity:.3f}"
            else:
                bad, message = v.failed, f"{v.status}: " + "; ".join(v.reasons)
            if bad:
                n_fail += 1
                ET.SubElement(case, "failure", message=message[:500], type=getattr(v, "status", "speaker")).text = message
            elif message.strip(": "):
                ET.SubElement(case, "system-out").text = message + (" (exact)" if getattr(v, "exact", False) else "")
        suite.set("failures", str(n_fail))
        suite.set("errors", "0")
        total, failed = total + len(cases), failed + n_fail
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def summary_line(report: RegressionReport) -> str:
    """One line for logs and exception messages, naming up to five failing lines."""
    c = report.counts()
    head = (f"audio regression {'passed' if report.ok else 'FAILED'} for {report.script}: {c['changed']} changed, "
            f"{c['missing']} missing, {c['new']} new, {c['within']} within tolerance, {c['same']} same")
    bad = [f"{v.id} ({v.status}: {v.reasons[0] if v.reasons else ''})" for v in report.lines if v.failed]
    bad += [f"speaker {s.character} similarity {s.similarity:.3f}" for s in report.speakers if not s.ok]
    bad += [f"scene {v.index} {v.status}" for v in report.scenes if v.failed and not v.lines]
    more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
    return head + (". " + "; ".join(bad[:5]) + more if bad else ".")


def to_markdown(report: RegressionReport, title: str | None = None) -> str:
    """A summary for people: counts, exact-sample count, every line that is not `same`, scenes, speakers."""
    c = report.counts()
    verdict = "PASSED" if report.ok else "FAILED"
    exact = sum(v.exact for v in report.lines)
    out = [
        title or f"# Audio regression: {report.script} — {verdict}",
        "",
        f"{len(report.lines)} lines: {c['same']} same, {c['within']} within tolerance, {c['changed']} changed, "
        f"{c['missing']} missing, {c['new']} new.",
        f"Exact sample match: {exact}/{len(report.lines)} lines"
        + (" (bit-identical render)." if report.exact else " (differences, if any, are judged by tolerances)."),
        "",
    ]
    out += [f"> {note}" for note in report.notes] + ([""] if report.notes else [])
    flagged = [v for v in report.lines if v.status != "same"]
    if flagged:
        out += ["## Lines", "", "| status | line | text | why |", "|---|---|---|---|"]
        for v in flagged:
            out.append(f"| {v.status} | `{v.id}` | {_md(v.text, 60)} | {_md('; '.join(v.reasons), 200)} |")
        out.append("")
    out += ["## Scenes", "", "| scene | status | Δ duration (s) | max line shift (s) | lines changed/missing/new |",
            "|---|---|---|---|---|"]
    for v in report.scenes:
        bad = sum(v.lines.get(k, 0) for k in FAILING)
        dur = v.deltas.get("duration")
        out.append(f"| {v.index}. {_md(v.heading, 50)} | {v.status}{' (exact)' if v.exact else ''} | "
                   f"{'' if dur is None else f'{dur:+.3f}'} | {v.deltas.get('max_shift', 0):.3f} | {bad} |")
    if report.speakers:
        out += ["", "## Speakers", "", "| character | similarity | ok |", "|---|---|---|"]
        for sp in report.speakers:
            out.append(f"| {sp.character} | {sp.similarity:.3f} | {'yes' if sp.ok else '**no**'} |")
    return "\n".join(out) + "\n"


def _md(text: str, limit: int) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
