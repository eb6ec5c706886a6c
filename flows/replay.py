"""A rerun where nothing changed, answered without Prefect.

After a completed render the CLI records in `render-report.json` an `inputs_key` — a content key over everything
that determines the outputs: the script's bytes, the settings, the engine and its model identities, the cast file
and every voice file it pins, the scenes asked for, the output and work folders, our own code (a digest of the
`pipeline/` and `flows/` sources and configs) and the versions of the libraries that make the sound — and the size
and modification time of every file it wrote (scenes, master, cue sheet, subtitles) and of every voice lock.

The next `readthrough render` with the same inputs checks all of that (well under a second) and, when everything
matches, writes the same report again (every scene `cached`, every line `reused`, this run's time) without
importing Prefect or starting a server; anything that does not match — an edited line, a touched or missing
output, another setting, `--force`, a configured PREFECT_API_URL (runs are to be recorded there) — runs the flow
as always, whose own caches then do the work. `READTHROUGH_REPLAY=0` turns this off.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import Callable

from pipeline.files import file_stat
from pipeline.keys import content_key, sha256_file
from pipeline.render_report import RenderReport, load_render_report, save_render_report
REPLAY_VERSION = "1"
_CODE_ROOT = Path(__file__).resolve().parent.parent
# scipy: its compiled biquad kernel filters every mix (pipeline.iir); pyloudnorm, only the tests' reference, is not
_SOUND_LIBRARIES = ("mlx", "mlx-audio", "espeakng-loader", "numpy", "soundfile", "scipy", "prefect")


def enabled() -> bool:
    from flows.server import configured_api_url

    return os.environ.get("READTHROUGH_REPLAY", "1").strip().lower() not in ("0", "false", "no", "off") and \
        not configured_api_url()


def code_digest() -> str:
    """sha256 over our sources (pipeline/, flows/, configs/): a code change never replays an old render."""
    h = hashlib.sha256()
    for sub in ("pipeline", "flows", "configs"):
        for path in sorted((_CODE_ROOT / sub).rglob("*")):
            if path.suffix in (".py", ".toml", ".json") and path.is_file():
                h.update(path.relative_to(_CODE_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _SOUND_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _models(settings, engine: str, models_dir) -> dict[str, str]:
    if engine != "qwen3":
        return {}
    from pipeline.engines.qwen3 import model_identity

    if models_dir:
        root = Path(models_dir).expanduser()
        return {sub.name: model_identity(str(sub)) for sub in sorted(root.iterdir()) if sub.is_dir()}
    return {k: model_identity(v) for k, v in settings.models.model_dump().items() if isinstance(v, str)}


def _cast_files(cast_file, castfile) -> dict[str, str | None]:
    if not cast_file:
        return {}
    files = {str(cast_file): sha256_file(cast_file)}
    for entry in (castfile.characters.values() if castfile is not None else ()):
        lock = getattr(entry, "lock", None)
        if lock:
            files[str(lock)] = sha256_file(lock) if Path(lock).is_file() else None
    return files


def inputs_key(script, settings, engine: str, models_dir, cast_file, castfile, out_dir, home, scenes, *,
               lexicon_file=None) -> str:
    """The content key of everything that determines a render's outputs (see module doc)."""
    return content_key("render-inputs", REPLAY_VERSION, {
        "script": sha256_file(script), "settings": settings.model_dump(mode="json"), "engine": engine,
        "models": _models(settings, engine, models_dir), "cast": _cast_files(cast_file, castfile),
        "lexicon": sha256_file(lexicon_file) if lexicon_file else None,
        "scenes": list(scenes or []), "out": str(Path(out_dir).expanduser().resolve()),
        "home": str(Path(home).expanduser().resolve()), "code": code_digest(), "versions": _versions()})


def written_files(report: RenderReport) -> list[str]:
    """Every file a completed render stands on: scene files, deliverables, voice locks."""
    files = [s.path for s in report.scenes if s.path]
    files += [p for p in report.outputs.values() if p]
    files += [c.lock_path for c in report.cast.values() if c.lock_path]
    return files


def seal(report: RenderReport, key: str) -> RenderReport:
    """The report plus what a later replay must find unchanged."""
    return report.model_copy(update={"inputs_key": key,
                                     "file_stats": {p: file_stat(p) for p in written_files(report)}})


def replay(report_path: Path, key: str, wall: Callable[[], float]) -> dict | None:
    """When the last render at `report_path` had these inputs (`key`) and its files are unchanged: write its
    report again as a fully cached run (every scene cached, every line reused, this run's start and `wall()`) and
    return it; else None (the flow must run)."""
    from pipeline.errors import RenderError
    from pipeline.files import now_iso

    try:
        old = load_render_report(report_path)
    except RenderError:
        return None
    if old.status != "completed" or old.inputs_key != key:
        return None
    files = written_files(old)
    if not files or any(old.file_stats.get(p) is None or file_stat(p) != old.file_stats[p] for p in files):
        return None
    scenes = [s.model_copy(update={"cached": True, "rendered": 0, "reused": s.lines}) for s in old.scenes]
    counts = old.counts.model_copy(update={"rendered": 0, "reused": sum(s.lines for s in scenes), "failed": 0})
    report = old.model_copy(update={"scenes": scenes, "counts": counts, "force": False, "replayed": True,
                                    "started": now_iso(), "flow_seconds": None})
    report = report.model_copy(update={"wall_seconds": round(wall(), 3)})
    save_render_report(report_path, report)
    return report.to_json()
