"""Everything a command can check before Prefect is imported or a server started (both cost seconds).

`preflight(...)` reads and parses the script (a file that is not Fountain is an error), loads the settings, resolves
`--scenes`, loads the cast file against the script's characters, resolves the engine (with the reason `auto` gave)
and checks that the engine can run here (Qwen3-TTS models on disk or fetchable; ffmpeg for MP3/M4B masters). A
mistake in any of these comes back in well under a second, naming the file, key or flag and the fix. Nothing here
imports Prefect; tests assert that.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import EngineError, ModelError, SettingsError

MASTER_FORMATS = ("wav", "flac", "mp3", "m4b")
NEEDS_FFMPEG = ("mp3", "m4b")
FFMPEG_ADVICE = ("install ffmpeg (Debian/Ubuntu: `sudo apt-get install ffmpeg`; macOS: `brew install ffmpeg`) "
                 "or choose --format wav or flac")


@dataclass(frozen=True)
class Preflight:
    """What the checks found; the flow re-derives the same from the same inputs."""

    screenplay: Any
    settings: Any
    engine: str
    reason: str
    scenes: list[int] = field(default_factory=list)
    castfile: Any = None
    warnings: tuple[str, ...] = ()


def engine_choices() -> list[str]:
    """`auto` and every registered engine: the one list every command's --engine accepts."""
    from pipeline.engines import AUTO, engine_names

    return [AUTO, *engine_names()]


def master_overrides(formats: tuple[str, ...] | list[str] | None) -> dict:
    """`--format mp3 --format flac` → settings overrides (output.master_formats), in the order given."""
    if not formats:
        return {}
    return {"output.master_formats": list(dict.fromkeys(f.lower() for f in formats))}


def check_formats(settings) -> None:
    """MP3/M4B masters are encoded by ffmpeg: say so now, not after the render."""
    wanted = [f.lower().lstrip(".") for f in settings.output.master_formats]
    need = [f for f in wanted if f in NEEDS_FFMPEG]
    if need and shutil.which("ffmpeg") is None and settings.output.master:
        raise SettingsError(f"A {'/'.join(need)} master needs ffmpeg, which is not on PATH: {FFMPEG_ADVICE}.")


def check_engine(name: str, settings, models_dir) -> None:
    """The chosen engine can run here: qwen3 models are local or fetchable; preview has espeak-ng."""
    if name == "qwen3":
        _check_qwen3_models(settings, models_dir)
    elif name == "preview":
        _check_espeak()


def _check_qwen3_models(settings, models_dir) -> None:
    from pipeline.engines.select import _hub_offline, _hub_reachable, _in_hf_cache, _is_model_dir

    if models_dir is not None:
        root = Path(models_dir).expanduser()
        missing = [d for d in ("base", "voice-design") if not _is_model_dir(root / d)]
        if missing:
            raise ModelError(f"--models {root} lacks {', '.join(m + '/' for m in missing)} (each a Qwen3-TTS model "
                             "folder with config.json). Make tiny test models with `readthrough make-tiny-models "
                             f"{root}` or pass the folder that holds them.")
        return
    m = settings.models
    base_key, base = ("models.base_final", m.base_final) if settings.render.quality == "final" else (
        "models.base_draft", m.base_draft)
    for key, model_id in (("models.voice_design", m.voice_design), (base_key, base)):
        path = Path(model_id).expanduser()
        if path.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") != 1:
            if not _is_model_dir(path):
                raise ModelError(f"Model folder {path} ({key}) does not exist or has no config.json. Set {key} to a "
                                 "Qwen3-TTS model folder, or pass --models DIR (`readthrough make-tiny-models DIR` "
                                 "writes tiny test ones).")
        elif not _in_hf_cache(model_id):
            why = "the hub is off (HF_HUB_OFFLINE)" if _hub_offline() else (
                None if _hub_reachable(model_id) else "the Hugging Face hub does not answer from here")
            if why:
                raise ModelError(
                    f"Qwen3-TTS model {model_id} ({key}) is not on this machine and {why}. On a networked machine "
                    f"run `huggingface-cli download {model_id}` and copy the Hugging Face cache here, point the "
                    "setting at a local folder, pass --models DIR, or use --engine preview.")


def _check_espeak() -> None:
    import importlib.util

    if importlib.util.find_spec("espeakng_loader") is None and shutil.which("espeak-ng") is None:
        raise EngineError("The preview engine needs espeak-ng: install the extra (`pip install "
                          "'readthrough[preview]'`) or the espeak-ng program, or choose --engine qwen3 with models.")


def no_dialogue_warning(screenplay, path) -> str | None:
    if any(True for _ in screenplay.dialogues()):
        return None
    return (f"{path} has {len(screenplay.headed_scenes)} scene(s) but no dialogue: there is nothing to voice. "
            "A dialogue block is a character cue in CAPITALS on its own line, then the speech on the next line.")


def preflight(script, *, engine: str | None = None, models_dir=None, settings_file=None,
              overrides: dict | None = None, cast_file=None, scenes: list[str] | None = None) -> Preflight:
    """Check every input of a cast/render (see module doc). Raises a ReadthroughError naming what is wrong."""
    from pipeline.config import load_settings
    from pipeline.engines.select import resolve_engine
    from pipeline.fountain import check_screenplay, read_script

    settings = load_settings(settings_file, overrides or None)
    check_formats(settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        screenplay = read_script(script)
    check_screenplay(screenplay, script)
    notes = [str(w.message) for w in caught]
    chosen: list[int] = []
    if scenes is not None:
        from pipeline.render import select_scenes

        try:
            chosen = select_scenes(screenplay, scenes)
        except ValueError as e:
            raise SettingsError(f"--scenes: {e}.") from None
    castfile = None
    if cast_file:
        from pipeline.castfile import load_cast_file

        castfile = load_cast_file(cast_file, screenplay.characters())
    name, reason = resolve_engine(settings, models_dir, engine=None if engine in (None, "", "auto") else engine)
    check_engine(name, settings, models_dir)
    warning = no_dialogue_warning(screenplay, script)
    if warning:
        notes.append(warning)
    return Preflight(screenplay, settings, name, reason, chosen, castfile, tuple(notes))
