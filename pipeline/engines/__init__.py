"""Engine registry. Engines are imported lazily so that choosing one never loads another's dependencies
(the preview engine links GPL espeak-ng; qwen3 loads MLX)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

from ..errors import EngineError, did_you_mean
from .base import Engine, RenderJob, RenderOutcome

if TYPE_CHECKING:
    from ..config import Settings

# name -> "module:factory"; factory(settings, models_dir) -> Engine
_ENGINES: dict[str, str] = {
    "qwen3": "pipeline.engines.qwen3:create",
    "preview": "pipeline.engines.preview:create",
    "instant": "pipeline.engines.instant:create",
}


def register_engine(name: str, target: str | Callable) -> None:
    """Register an engine factory (a callable or a 'module:function' string)."""
    _ENGINES[name] = target


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def create_engine(name: str, settings: "Settings", models_dir=None) -> Engine:
    if name not in _ENGINES:
        raise EngineError(f"Unknown engine {name!r}.{did_you_mean(name, _ENGINES)}")
    target = _ENGINES[name]
    if isinstance(target, str):
        module, func = target.split(":")
        target = getattr(importlib.import_module(module), func)
    return target(settings, models_dir)


__all__ = ["Engine", "RenderJob", "RenderOutcome", "create_engine", "engine_names", "register_engine"]
