"""The review page: `OUT/index.html`, one self-contained HTML file to listen to the cast, the auditions and the render.

Two halves, like every stage here:

- `build_review(out_dir)` (I/O at the edge) reads what the render wrote — `render-report.json` and `cast.json`,
  through their schemas — copies each audition WAV into `OUT/auditions/` (so the folder can be moved or shared
  and every link stays relative), and draws a waveform envelope per scene from its samples;
- `review_html(page)` is a pure function of the typed `ReviewPage`: inline CSS and JS, no CDN, no network, every
  piece of script text HTML-escaped, links to audio relative to the page.

`write_review(out_dir)` does both and writes the page atomically.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from .files import atomic_path, atomic_write_text, slug, sweep_temps
from .render_report import REPORT_NAME, RenderReport, SceneRecord, load_render_report

PAGE_NAME = "index.html"
CAST_RESULTS_NAME = "cast.json"
AUDITIONS_DIR = "auditions"
WAVEFORM_POINTS = 480  # columns of the per-scene waveform (min/max per column)
CAST_RESULTS_VERSION = 1


# ------------------------------------------------------------------------------------------- the page's data


@dataclass(frozen=True)
class AuditionView:
    index: int
    seed: int
    text: str
    href: str | None  # relative to the page; None when the file is gone
    chosen: bool
    snippet: str | None  # the cast-file lines that pin this audition (None: cannot be pinned, e.g. an extra)
    pick_command: str | None


@dataclass(frozen=True)
class CharacterView:
    name: str
    gender: str | None
    age_range: tuple[int, int] | None
    traits: tuple[str, ...]
    summary: str | None
    description: str
    auditions: tuple[AuditionView, ...]
    chosen: int | None
    reason: str
    source: str  # designed | lock | preset | extra
    extra_voice: str | None
    lock_path: str
    lock_digest: str


@dataclass(frozen=True)
class LineView:
    character: str
    text: str
    start: float | None  # seconds in the scene file; None when the line has no place in a mix (failed scene)
    end: float | None
    source_line: int | None = None
    failed: str | None = None  # the reason, for a failed line
    extension: str | None = None  # V.O., O.S. …


@dataclass(frozen=True)
class SceneView:
    label: str
    heading: str | None
    status: str
    href: str | None
    duration: float
    lufs: float | None
    true_peak_db: float | None
    lines: tuple[LineView, ...]
    waveform: tuple[tuple[float, float], ...] = ()  # (min, max) per column, -1 … 1
    error: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class RunFacts:
    script: str
    status: str
    engine: Mapping[str, Any]
    counts: Mapping[str, int]
    audio_seconds: float
    wall_seconds: float
    started: str
    command: str
    master_note: str | None = None
    outputs: tuple[tuple[str, str], ...] = ()  # (name, relative href)
    error: str | None = None


@dataclass(frozen=True)
class ReviewPage:
    title: str
    run: RunFacts
    cast: tuple[CharacterView, ...]
    scenes: tuple[SceneView, ...]
    cast_file: str | None = None  # where `--pick` writes (shown in the picking help)


# ------------------------------------------------------------------------------------------ cast results file


def write_cast_results(path: str | os.PathLike, script: str, results: Sequence[Any],
                       cast_file: str | None = None) -> Path:
    """`cast.json` beside the render: {"version", "script", "cast_file", "characters": [CastResult JSON]}."""
    from .files import atomic_write_json

    return atomic_write_json(path, {"version": CAST_RESULTS_VERSION, "script": script, "cast_file": cast_file,
                                    "characters": [r.to_json() for r in results]})


def read_cast_results(path: str | os.PathLike) -> tuple[list, str | None]:
    """(CastResults, cast file) from `cast.json`; ([], None) when absent (e.g. the render stopped before casting)."""
    from .casting import CastResult

    path = Path(path)
    if not path.is_file():
        return [], None
    data = json.loads(path.read_text(encoding="utf-8"))
    return [CastResult.from_json(c) for c in data.get("characters", [])], data.get("cast_file")


# ------------------------------------------------------------------------------------------- I/O: build


def href(out_dir: Path, path: str | os.PathLike | None) -> str | None:
    """A page-relative, percent-encoded link to `path`, or None when the file does not exist."""
    if not path:
        return None
    p = Path(path)
    p = p if p.is_absolute() else out_dir / p
    if not p.is_file():
        return None
    rel = os.path.relpath(p.resolve(), out_dir.resolve())
    return "/".join(quote(part) for part in Path(rel).parts)


def waveform(path: str | os.PathLike, points: int = WAVEFORM_POINTS) -> tuple[tuple[float, float], ...]:
    """(min, max) of the mono mix per column, read in blocks (a long scene is never all in memory)."""
    import numpy as np
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except RuntimeError:
        return ()
    frames = info.frames
    if frames <= 0:
        return ()
    per = max(1, math.ceil(frames / points))
    lo, hi = [], []
    for block in sf.blocks(str(path), blocksize=per * 64, dtype="float32", always_2d=True):
        x = block.mean(axis=1)
        n = math.ceil(len(x) / per)
        padded = np.pad(x, (0, n * per - len(x)), mode="edge").reshape(n, per)
        lo.extend(padded.min(axis=1).tolist())
        hi.extend(padded.max(axis=1).tolist())
    return tuple((round(a, 3), round(b, 3)) for a, b in zip(lo, hi))


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


def pin_snippet(name: str, index: int) -> str:
    """The cast-file lines that pin audition `index` for `name`."""
    return f"[characters.{_toml_key(name)}]\naudition = {index}\n"


def _audition_hrefs(out_dir: Path, character: str, auditions) -> dict[int, str | None]:
    """Each audition (index, path) copied under OUT/auditions/<character>/: its href by index (None when its take is
    gone). The folder is swept first of temp files a killed copy left (dead writers only), once per page write."""
    folder = out_dir / AUDITIONS_DIR / slug(character)
    sweep_temps(folder, recursive=False)
    return {a.index: _copy_audition(a.path, out_dir, folder, a.index) for a in auditions}


def _copy_audition(src: str, out_dir: Path, folder: Path, index: int) -> str | None:
    """Copy one audition WAV into `folder` (OUT/auditions/<character>/; only when missing or changed); its
    href relative to `out_dir`."""
    source = Path(src)
    if not source.is_file():
        return None
    dest = folder / f"audition-{index}{source.suffix or '.wav'}"
    st = source.stat()
    if not (dest.is_file() and dest.stat().st_size == st.st_size and dest.stat().st_mtime >= st.st_mtime):
        with atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
    return href(out_dir, dest)


def _character(out_dir: Path, r, script: str, pick_target: str | None) -> CharacterView:
    p = r.profile
    pinnable = r.source == "designed"
    hrefs = _audition_hrefs(out_dir, r.extra_voice or r.name, r.auditions)
    auditions = tuple(
        AuditionView(
            index=a.index, seed=a.seed, text=a.text, href=hrefs[a.index],
            chosen=a.index == r.chosen, snippet=pin_snippet(r.name, a.index) if pinnable else None,
            pick_command=shlex.join(["readthrough", "cast", script, "--pick", f"{r.name}={a.index}",
                                     *(["--cast", pick_target] if pick_target else [])]) if pinnable else None)
        for a in r.auditions)
    return CharacterView(
        name=r.name, gender=p.gender, age_range=tuple(p.age_range) if p.age_range else None,
        traits=tuple(p.traits or ()), summary=p.summary, description=r.description, auditions=auditions,
        chosen=r.chosen, reason=r.reason, source=r.source, extra_voice=r.extra_voice, lock_path=r.lock_path,
        lock_digest=r.lock_digest)


def _scene(out_dir: Path, s: SceneRecord) -> SceneView:
    cues = [LineView(c.character, c.text, c.start, c.end, c.source_line, extension=c.extension) for c in s.cues]
    failed = [LineView(f.character, f.text, None, None, f.source_line, failed=f.reason) for f in s.failed_lines]
    link = href(out_dir, s.path) if s.status == "done" else None
    loud = s.loudness
    return SceneView(
        label=s.scene, heading=s.heading, status=s.status, href=link, duration=s.duration,
        lufs=loud.lufs if loud else None, true_peak_db=loud.true_peak_db if loud else None,
        lines=tuple(sorted(cues, key=lambda c: c.start or 0.0)) + tuple(failed),
        waveform=waveform(out_dir / s.path) if link else (), error=s.error, cached=s.cached)


def rerun_command(report: RenderReport) -> str:
    """The exact command to run this render again (recorded by the render; rebuilt from the report otherwise)."""
    if report.command:
        return shlex.join(report.command)
    args = ["readthrough", "render", report.script, "-o", "OUT", "--engine", str(report.engine.get("name", "auto"))]
    if report.scenes_requested:
        args += ["--scenes", ",".join(str(s) for s in report.scenes_requested)]
    return shlex.join(args)


def build_review(out_dir: str | os.PathLike) -> ReviewPage:
    """The typed page data from the files in `out_dir` (render-report.json, cast.json, the scene files)."""
    out = Path(out_dir).resolve()
    report = load_render_report(out / REPORT_NAME)
    results, cast_file = read_cast_results(out / CAST_RESULTS_NAME)
    run = RunFacts(
        script=report.script, status=report.status, engine=dict(report.engine), counts=report.counts.model_dump(),
        audio_seconds=report.audio_seconds, wall_seconds=report.wall_seconds, started=report.started,
        command=rerun_command(report), master_note=report.master_note, error=report.error,
        outputs=tuple((k, h) for k, v in sorted(report.outputs.items()) if (h := href(out, v))))
    return ReviewPage(
        title=report.title or report.script_name or Path(report.script).stem, run=run,
        cast=tuple(_character(out, r, report.script, cast_file) for r in results),
        scenes=tuple(_scene(out, s) for s in report.scenes), cast_file=cast_file)


def write_review(out_dir: str | os.PathLike) -> Path:
    """Build and write OUT/index.html atomically; returns its path."""
    out = Path(out_dir).resolve()
    return atomic_write_text(out / PAGE_NAME, review_html(build_review(out)))


# ------------------------------------------------------------------------------------------- pure: HTML


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too: safe in text and in attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = int(round(seconds * 1000))
    m, rem = divmod(ms, 60_000)
    return f"{m}:{rem / 1000:06.3f}"


def _db(value: float | None, unit: str) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1f} {unit}"


def waveform_svg(peaks: Sequence[tuple[float, float]], player_id: str, height: int = 56) -> str:
    """An inline SVG of the envelope; a click on it seeks the scene's player (see the page script)."""
    if not peaks:
        return ""
    mid = height / 2
    top = " ".join(f"{i},{mid - hi * mid:.1f}" for i, (_, hi) in enumerate(peaks))
    bottom = " ".join(f"{i},{mid - lo * mid:.1f}" for i, (lo, _) in reversed(list(enumerate(peaks))))
    w = len(peaks)
    return (f'<svg class="wave" data-player="{esc(player_id)}" viewBox="0 0 {w} {height}" preserveAspectRatio="none"'
            f' role="img" aria-label="waveform"><line x1="0" y1="{mid}" x2="{w}" y2="{mid}" class="axis"/>'
            f'<polygon points="{top} {bottom}"/><line class="head" x1="0" y1="0" x2="0" y2="{height}"/></svg>')


def _profile_html(c: CharacterView) -> str:
    rows = [("gender", c.gender), ("age", "–".join(map(str, c.age_range)) if c.age_range else None),
            ("traits", ", ".join(c.traits) or None), ("summary", c.summary), ("description", c.description)]
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows if v) + "</dl>"


def _audition_html(c: CharacterView, a: AuditionView) -> str:
    player = (f'<audio controls preload="metadata" src="{esc(a.href)}"></audio>' if a.href
              else '<span class="missing">file not found</span>')
    pin = ""
    if a.snippet:
        pin = (f'<pre class="snippet">{esc(a.snippet)}</pre>'
               f'<button type="button" class="copy" data-copy="{esc(a.snippet)}">copy cast-file snippet</button>'
               f'<code class="cmd">{esc(a.pick_command)}</code>')
    mark = '<strong class="picked">picked</strong>' if a.chosen else ""
    return (f'<li class="audition{" chosen" if a.chosen else ""}"><span>audition {a.index} (seed {a.seed})</span> '
            f"{mark} {player}{pin}</li>")


def _character_html(c: CharacterView) -> str:
    where = {"lock": "voice from the cast file's lock", "preset": "a preset speaker from the cast file",
             "extra": f"shares the pool voice {c.extra_voice}" if c.extra_voice else "a pooled extra voice"}
    note = f'<p class="note">{esc(where[c.source])}</p>' if c.source in where else ""
    auditions = "".join(_audition_html(c, a) for a in c.auditions)
    picked = f"audition {c.chosen}" if c.chosen is not None else "no audition"
    return (f'<section class="character" id="cast-{esc(slug(c.name))}"><h3>{esc(c.name)}</h3>{note}'
            f"{_profile_html(c)}"
            f'<p class="why"><b>Picked:</b> {esc(picked)} — {esc(c.reason)}</p>'
            f'{"<ol class=auditions>" + auditions + "</ol>" if auditions else ""}'
            f'<p class="lock"><b>Lock:</b> <code>{esc(c.lock_path)}</code> '
            f'<span class="digest">{esc(c.lock_digest[:16])}</span></p></section>')


def _line_html(line: LineView, player_id: str | None) -> str:
    where = f' <span class="src">line {line.source_line}</span>' if line.source_line else ""
    who = esc(line.character) + (f' <span class="ext">({esc(line.extension)})</span>' if line.extension else "")
    if line.failed:
        return (f'<li class="line failed"><span class="time">failed</span> <b>{who}</b> '
                f'<span class="text">{esc(line.text)}</span>{where}<div class="reason">{esc(line.failed)}</div></li>')
    seek = (f' data-player="{esc(player_id)}" data-start="{line.start:.3f}" data-end="{(line.end or 0):.3f}"'
            f' tabindex="0" role="button"') if player_id and line.start is not None else ""
    return (f'<li class="line"{seek}><span class="time">{esc(clock(line.start))}</span> <b>{who}</b> '
            f'<span class="text">{esc(line.text)}</span>{where}</li>')


def _scene_html(n: int, s: SceneView) -> str:
    pid = f"scene-player-{n}"
    player = (f'<audio id="{pid}" class="scene-player" controls preload="metadata" src="{esc(s.href)}"></audio>'
              if s.href else "")
    status = "cached" if s.cached else s.status
    facts = (f'<span class="status {esc(s.status)}">{esc(status)}</span> · {esc(clock(s.duration))} · '
             f'{esc(_db(s.lufs, "LUFS"))} · peak {esc(_db(s.true_peak_db, "dBTP"))}')
    err = f'<p class="reason">{esc(s.error)}</p>' if s.error else ""
    lines = "".join(_line_html(line, pid if s.href else None) for line in s.lines)
    return (f'<section class="scene" id="scene-{esc(s.label)}"><h3>Scene {esc(s.label)}: {esc(s.heading or "")}</h3>'
            f'<p class="facts">{facts}</p>{err}{player}{waveform_svg(s.waveform, pid) if s.href else ""}'
            f'<ol class="lines">{lines}</ol></section>')


def _run_html(r: RunFacts, scenes: Sequence[SceneView]) -> str:
    engine = [(f"engine {k}" if k != "name" else "engine", v if isinstance(v, str) else json.dumps(v))
              for k, v in r.engine.items() if v not in (None, "", {}, [])]
    counts = ", ".join(f"{k} {v}" for k, v in r.counts.items())
    rows = [("script", r.script), ("status", r.status), *engine, ("lines", counts),
            ("audio", clock(r.audio_seconds)), ("wall time", f"{r.wall_seconds:.1f} s"), ("started", r.started),
            ("master", r.master_note), ("error", r.error)]
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows if v)
    loud = "".join(f"<tr><td>{esc(s.label)}</td><td>{esc(s.status)}</td><td>{esc(_db(s.lufs, 'LUFS'))}</td>"
                   f"<td>{esc(_db(s.true_peak_db, 'dBTP'))}</td><td>{esc(clock(s.duration))}</td></tr>"
                   for s in scenes)
    outputs = "".join(f'<li><a href="{esc(h)}">{esc(name)}</a></li>' for name, h in r.outputs)
    return (f"<table class=facts>{table}</table>"
            f'<p><b>Rerun:</b> <code id="rerun">{esc(r.command)}</code> '
            f'<button type="button" class="copy" data-copy="{esc(r.command)}">copy</button></p>'
            f'{"<ul class=outputs>" + outputs + "</ul>" if outputs else ""}'
            "<table class=loudness><tr><th>scene</th><th>status</th><th>loudness</th><th>true peak</th>"
            f"<th>length</th></tr>{loud}</table>")


PAGE_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem 1.5rem;color:#1d1d1f;background:#fafafa}
h1{margin:.2rem 0}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
section.character,section.scene{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:.6rem 1rem;margin:.8rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.3rem 0}dt{color:#666}dd{margin:0}
ol.auditions{list-style:none;padding:0}li.audition{padding:.3rem;border-radius:6px;margin:.2rem 0}
li.audition.chosen{background:#eaf6ea;outline:1px solid #8c8}.picked{color:#262}
audio{vertical-align:middle;height:2rem;max-width:100%}pre.snippet{display:inline-block;margin:.2rem .5rem;padding:.2rem .4rem;background:#f3f3f3;font-size:12px}
code.cmd{display:block;font-size:12px;color:#555}button.copy{font-size:12px}
.facts{color:#444}.status.failed,.failed .time,.reason{color:#b00}.status.done{color:#262}
ol.lines{list-style:none;padding:0;margin:.4rem 0}li.line{padding:.15rem .4rem;border-radius:4px}
li.line[data-start]{cursor:pointer}li.line[data-start]:hover{background:#eef3fb}li.line.playing{background:#dde8fb}
li.line.failed{background:#fdecec}.time{font-family:ui-monospace,monospace;color:#666;display:inline-block;min-width:5.5rem}
.src,.ext{color:#999;font-size:12px}svg.wave{display:block;width:100%;height:56px;background:#f4f6fa;cursor:pointer;margin:.3rem 0}
svg.wave polygon{fill:#5a7fbf}svg.wave .axis{stroke:#ccd}svg.wave .head{stroke:#c33;stroke-width:1.5;vector-effect:non-scaling-stroke}
table{border-collapse:collapse;margin:.4rem 0}th,td{text-align:left;padding:.15rem .6rem;border-bottom:1px solid #eee;vertical-align:top}
.note,.digest{color:#777}.missing{color:#b00}
"""

_JS = """
(function(){
  function player(id){return document.getElementById(id);}
  document.addEventListener('click',function(e){
    var c=e.target.closest('button.copy');
    if(c){copy(c.getAttribute('data-copy'),c);return;}
    var line=e.target.closest('li.line[data-start]');
    if(line){seek(player(line.getAttribute('data-player')),parseFloat(line.getAttribute('data-start')));return;}
    var svg=e.target.closest('svg.wave');
    if(svg){var a=player(svg.getAttribute('data-player'));var r=svg.getBoundingClientRect();
      if(a&&a.duration)seek(a,a.duration*(e.clientX-r.left)/r.width);}
  });
  document.addEventListener('keydown',function(e){
    var line=e.target.closest&&e.target.closest('li.line[data-start]');
    if(line&&(e.key==='Enter'||e.key===' ')){e.preventDefault();line.click();}
  });
  function seek(a,t){if(!a)return;a.currentTime=t;var p=a.play();if(p&&p.catch)p.catch(function(){});}
  function copy(text,btn){
    function done(){var o=btn.textContent;btn.textContent='copied';setTimeout(function(){btn.textContent=o;},1200);}
    if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(text).then(done,fallback);}else{fallback();}
    function fallback(){var t=document.createElement('textarea');t.value=text;document.body.appendChild(t);t.select();
      try{document.execCommand('copy');done();}catch(err){}document.body.removeChild(t);}
  }
  document.querySelectorAll('audio.scene-player').forEach(function(a){
    var lines=document.querySelectorAll('li.line[data-player="'+a.id+'"]');
    var head=document.querySelector('svg.wave[data-player="'+a.id+'"] .head');
    a.addEventListener('timeupdate',function(){
      var t=a.currentTime;
      lines.forEach(function(l){var s=parseFloat(l.getAttribute('data-start')),e=parseFloat(l.getAttribute('data-end'));
        l.classList.toggle('playing',t>=s&&t<e);});
      if(head&&a.duration){var w=head.ownerSVGElement.viewBox.baseVal.width;var x=w*t/a.duration;
        head.setAttribute('x1',x);head.setAttribute('x2',x);}
    });
  });
})();
"""


def review_html(page: ReviewPage) -> str:
    """The whole page as one string (pure: same data, same bytes)."""
    cast = "".join(_character_html(c) for c in page.cast) or "<p>No cast recorded for this render.</p>"
    pick_help = (
        "<p class=note>To keep another audition: copy its snippet into the cast file, or run the command under it"
        f"{' (it updates ' + esc(page.cast_file) + ')' if page.cast_file else ''}; the next render locks it.</p>")
    scenes = "".join(_scene_html(n, s) for n, s in enumerate(page.scenes, 1)) or "<p>No scenes were rendered.</p>"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; media-src 'self' file:; "
        "img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(page.title)} — readthrough review</title><style>{PAGE_CSS}</style></head><body>"
        f"<header><h1>{esc(page.title)}</h1><p class=facts>{esc(page.run.status)} · {esc(page.run.script)}</p>"
        f"{'<p class=reason>' + esc(page.run.error) + '</p>' if page.run.error else ''}"
        '<nav><a href="#cast">Cast</a> · <a href="#scenes">Scenes</a> · <a href="#run">Run</a></nav></header>'
        f'<h2 id="cast">Cast</h2>{pick_help}{cast}'
        f'<h2 id="scenes">Scenes</h2>{scenes}'
        f'<h2 id="run">Run</h2>{_run_html(page.run, page.scenes)}'
        f"<script>{_JS}</script></body></html>\n")
