"""The engine registry: every engine readthrough knows, in one table that settings (`render.engine`), the MLX guard,
voice locks (which lock kinds exist) and the CLI (`--engine` choices) all read. Engines are imported lazily, so
choosing one never loads another's dependencies (the preview engine links GPL espeak-ng; qwen3 loads MLX); this
module imports nothing heavy."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..errors import EngineError, did_you_mean

if TYPE_CHECKING:
    from ..config import Settings
    from .base import Engine

AUTO = "auto"  # not an engine: `--engine auto` picks one (pipeline.engines.select)


@dataclass(frozen=True)
class EngineEntry:
    name: str
    factory: str | Callable  # "module:function" or a callable; factory(settings, models_dir) -> Engine
    summary: str  # one line for --help
    lock_kinds: tuple[str, ...] = ()  # the kinds of VoiceLock this engine makes (pipeline.lock)
    loads_model_weights: bool = False  # real Qwen3-TTS weights through MLX: the MLX guard applies


_REGISTRY: dict[str, EngineEntry] = {e.name: e for e in (
    EngineEntry("qwen3", "pipeline.engines.qwen3:create", "Qwen3-TTS through mlx-audio (the real voices)",
                ("clone", "preset"), loads_model_weights=True),
    EngineEntry("preview", "pipeline.engines.preview:create", "espeak-ng, no model download (a rough preview)",
                ("preview",)),
    EngineEntry("instant", "pipeline.engines.instant:create", "synthetic tones, instantly (tests and benches)",
                ("instant",)),
)}


def register_engine(name: str, factory: str | Callable, *, summary: str = "", lock_kinds: tuple[str, ...] = (),
                    loads_model_weights: bool = False) -> None:
    """Register an engine (a factory callable or a 'module:function' string)."""
    _REGISTRY[name] = EngineEntry(name, factory, summary, tuple(lock_kinds), loads_model_weights)


def engine_names() -> list[str]:
    return sorted(_REGISTRY)


def engine_choices() -> str:
    """'auto|instant|preview|qwen3' for help texts."""
    return "|".join([AUTO, *engine_names()])


def engine_entry(name: str) -> EngineEntry:
    if name not in _REGISTRY:
        raise EngineError(f"Unknown engine {name!r}.{did_you_mean(name, _REGISTRY)}")
    return _REGISTRY[name]


def model_weight_engines() -> frozenset[str]:
    """Engines that load real model weights through MLX (what the MLX guard and the `mlx` slot apply to)."""
    return frozenset(e.name for e in _REGISTRY.values() if e.loads_model_weights)


def lock_kinds() -> tuple[str, ...]:
    """Every kind of VoiceLock some engine makes."""
    return tuple(dict.fromkeys(k for e in _REGISTRY.values() for k in e.lock_kinds))


def create_engine(name: str, settings: "Settings", models_dir=None) -> "Engine":
    target = engine_entry(name).factory
    if isinstance(target, str):
        module, func = target.split(":")
        target = getattr(importlib.import_module(module), func)
    return target(settings, models_dir)


__all__ = ["AUTO", "EngineEntry", "create_engine", "engine_choices", "engine_entry", "engine_names",
           "lock_kinds", "model_weight_engines", "register_engine"]
