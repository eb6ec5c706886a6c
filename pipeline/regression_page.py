"""`regression.html`: the audio regression verdict as a page to listen to, beside `regression.md`.

Per line: same / within tolerance / changed / missing / new, the measures that moved (with the tolerance), and
players for the golden's take and the new one where both exist. Goldens hold fingerprints, not audio, so the
golden's take is found in the line store by its content key and used only when its samples are exactly the ones
fingerprinted (same digest); the new take is the line store's (or, for a line fingerprinted from the mix, its span
of the scene file). Takes are copied under `OUT/regression-audio/` so every link is relative.

`regression_page(data)` is pure; `write_regression_page(...)` gathers the audio and writes the file atomically.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_path, atomic_write_text
from .regression.compare import RegressionReport, _align_lines
from .regression.golden import Golden, LineFingerprint
from .review import PAGE_CSS, esc, href

PAGE_NAME = "regression.html"
AUDIO_DIR = "regression-audio"
STATUS_WORDS = {"same": "same", "within": "within tolerance", "changed": "changed", "missing": "missing",
                "new": "new"}


@dataclass(frozen=True)
class LineRow:
    id: str
    scene: int
    character: str
    status: str
    text: str
    golden_text: str | None
    reasons: tuple[str, ...]
    deltas: tuple[tuple[str, float], ...]
    golden_href: str | None
    new_href: str | None
    identical: bool  # the two takes are the same samples (one player is enough)


@dataclass(frozen=True)
class RegressionPage:
    script: str
    ok: bool
    counts: tuple[tuple[str, int], ...]
    notes: tuple[str, ...]
    lines: tuple[LineRow, ...]
    scenes: tuple[tuple[int, str, str, tuple[str, ...]], ...]  # (index, heading, status, reasons)
    speakers: tuple[tuple[str, float, bool], ...]


# ---------------------------------------------------------------------------------------------- I/O


def _copy(src: Path, dest: Path) -> Path:
    if not (dest.is_file() and dest.stat().st_size == src.stat().st_size):
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    return dest


def _golden_take(out: Path, g: LineFingerprint | None, store) -> str | None:
    """The store's take of the golden line when it holds exactly the fingerprinted samples."""
    if g is None or store is None or not store.has(g.key):
        return None
    if store.get(g.key).digest() != g.audio.digest:
        return None
    src = store.path(g.key)
    return href(out, _copy(src, out / AUDIO_DIR / f"golden-{g.key[:24]}{src.suffix}"))


def _new_take(out: Path, c: LineFingerprint | None, store, scene_files: dict[int, Path]) -> str | None:
    if c is None:
        return None
    if c.source == "store" and store is not None and store.has(c.key):
        src = store.path(c.key)
        return href(out, _copy(src, out / AUDIO_DIR / f"new-{c.key[:24]}{src.suffix}"))
    scene = scene_files.get(c.scene)
    link = href(out, scene) if scene else None
    return f"{link}#t={c.start:.3f},{c.end:.3f}" if link else None


def build_regression_page(out_dir: str | os.PathLike, report: RegressionReport, golden: Golden, current: Golden,
                          store=None) -> RegressionPage:
    from .errors import RenderError
    from .regression.golden import scene_files as find_scene_files
    from .render_report import load_render_report

    out = Path(out_dir).resolve()
    pairs = _align_lines(golden.lines, current.lines)
    if len(pairs) != len(report.lines):  # compare() builds one verdict per aligned pair, in this order
        pairs = [(None, None)] * len(report.lines)
    try:
        scenes = find_scene_files(out, load_render_report(out))
    except RenderError:  # no readable render report: no players for slices of the scene files
        scenes = {}
    rows = []
    for v, (g, c) in zip(report.lines, pairs):
        g_href, c_href = _golden_take(out, g, store), _new_take(out, c, store, scenes)
        rows.append(LineRow(
            id=v.id, scene=v.scene, character=v.character, status=v.status, text=v.text, golden_text=v.golden_text,
            reasons=tuple(v.reasons), deltas=tuple(v.deltas.items()), golden_href=g_href, new_href=c_href,
            identical=bool(g and c and g.audio.digest == c.audio.digest)))
    return RegressionPage(
        script=report.script, ok=report.ok, counts=tuple(report.counts().items()), notes=tuple(report.notes),
        lines=tuple(rows), scenes=tuple((s.index, s.heading, s.status, tuple(s.reasons)) for s in report.scenes),
        speakers=tuple((s.character, s.similarity, s.ok) for s in report.speakers))


def write_regression_page(out_dir: str | os.PathLike, report: RegressionReport, golden: Golden, current: Golden,
                          store=None) -> Path:
    out = Path(out_dir).resolve()
    return atomic_write_text(out / PAGE_NAME, regression_page(build_regression_page(out, report, golden, current,
                                                                                     store)))


# ---------------------------------------------------------------------------------------------- pure: HTML


def _player(link: str | None, label: str) -> str:
    if not link:
        return f'<span class="none">{esc(label)}: no audio</span>'
    return f'<label>{esc(label)} <audio controls preload="metadata" src="{esc(link)}"></audio></label>'


def _row(r: LineRow) -> str:
    if r.identical and r.golden_href and r.new_href:
        players = _player(r.new_href, "golden = new")
    else:
        players = _player(r.golden_href, "golden") + " " + _player(r.new_href, "new")
    moved = "".join(f"<li>{esc(x)}</li>" for x in r.reasons) or "<li>nothing moved</li>"
    text = esc(r.text)
    if r.golden_text is not None and r.golden_text != r.text:
        text = f"<del>{esc(r.golden_text)}</del> <ins>{esc(r.text)}</ins>"
    return (f'<tr class="verdict {esc(r.status)}" data-status="{esc(r.status)}"><td>{esc(r.id)}</td>'
            f'<td class=status>{esc(STATUS_WORDS.get(r.status, r.status))}</td><td><b>{esc(r.character)}</b> {text}'
            f'</td><td><ul>{moved}</ul></td><td class=players>{players}</td></tr>')


def regression_page(page: RegressionPage) -> str:
    verdict = "OK" if page.ok else "REGRESSION"
    counts = ", ".join(f"{esc(STATUS_WORDS.get(k, k))} {v}" for k, v in page.counts)
    notes = "".join(f"<p class=note>{esc(n)}</p>" for n in page.notes)
    scenes = "".join(f"<tr class='verdict {esc(st)}'><td>{i}</td><td>{esc(h)}</td><td>{esc(st)}</td>"
                     f"<td>{esc('; '.join(rs))}</td></tr>" for i, h, st, rs in page.scenes)
    speakers = "".join(f"<tr><td>{esc(n)}</td><td>{sim:.3f}</td><td>{'ok' if ok else 'changed'}</td></tr>"
                       for n, sim, ok in page.speakers)
    css = PAGE_CSS + (".verdict.changed,.verdict.missing,.verdict.new{background:#fdecec}.verdict.within{background:#fff8e0}"
                  ".verdict.same{background:#f2faf2}td ul{margin:0;padding-left:1rem}del{color:#b00}ins{color:#262}"
                  ".none{color:#999;font-size:12px}")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; media-src 'self' file:; "
        "style-src 'unsafe-inline'\">"
        f"<title>Audio regression: {esc(page.script)}</title><style>{css}</style></head><body>"
        f"<h1>Audio regression: {esc(page.script)} — {verdict}</h1><p class=facts>{counts}</p>{notes}"
        "<h2>Lines</h2><table class=lines><tr><th>line</th><th>verdict</th><th>text</th><th>what moved</th>"
        f"<th>listen</th></tr>{''.join(_row(r) for r in page.lines)}</table>"
        f"<h2>Scenes</h2><table><tr><th>scene</th><th>heading</th><th>verdict</th><th>why</th></tr>{scenes}</table>"
        f"{'<h2>Speakers</h2><table><tr><th>character</th><th>similarity</th><th></th></tr>' + speakers + '</table>' if speakers else ''}"
        "</body></html>\n")

