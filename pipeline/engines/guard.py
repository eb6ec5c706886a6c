"""MLX backend guard: the real-model qwen3 engine runs on a GPU unless the user chose CPU on purpose.

On an Apple-silicon worker a missing Metal backend (an x86 Python under Rosetta, a Linux box that joined the
pool, `mlx[cpu]` installed instead of `mlx`) would otherwise turn a 20-minute render into a 20-hour one without a
word. The check is a pure function of its inputs; `metal_available()` is the one probe of the machine and callers
pass its answer in, so tests and the deployment code decide what "this machine" is.

Exempt: engines that do not load real Qwen3-TTS weights (preview, instant) and a `--models DIR` run (tiny or local
checkpoints the user pointed at explicitly — CI's tiny checkpoints run on CPU by design).
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

from ..errors import EngineError
from . import model_weight_engines

if TYPE_CHECKING:
    from ..config import Settings

ALLOW_ENV = "READTHROUGH_ALLOW_CPU_MLX"  # "1": the explicit flag (set by `readthrough worker --allow-cpu-mlx`)
GUARD_ENV = "READTHROUGH_MLX_GUARD"  # "1": enforce the guard (set in the apple-silicon deployments' env)
_TRUE = {"1", "true", "yes", "on"}


def metal_available() -> bool:
    """True when MLX's Metal backend is usable in this process (Apple silicon, native arm64 Python, `mlx`)."""
    if platform.system() != "Darwin":
        return False
    try:
        import mlx.core as mx

        return bool(mx.metal.is_available())
    except Exception:  # no mlx, or an mlx build without Metal
        return False


def env_flag(name: str, environ=None) -> bool:
    return str((os.environ if environ is None else environ).get(name, "")).strip().lower() in _TRUE


def check_mlx_backend(engine: str, settings: "Settings", models_dir: str | os.PathLike | None = None, *,
                      metal: bool, allow_cpu: bool = False) -> str:
    """Return a one-line reason why `engine` may run here, or raise EngineError saying how to fix it.

    `metal`: whether this machine has MLX's Metal backend (pass `metal_available()`).
    `allow_cpu`: an explicit per-run/per-worker permission; `settings.deploy.allow_cpu_mlx` is the config one.
    """
    name = (engine or "").strip().lower()
    if name not in model_weight_engines():
        return f"guard: engine {name!r} does not load Qwen3-TTS weights; no GPU needed"
    if models_dir is not None:
        return f"guard: qwen3 with local checkpoints from {models_dir} (explicit --models); CPU allowed"
    if metal:
        return "guard: MLX Metal backend available"
    if allow_cpu or settings.deploy.allow_cpu_mlx:
        why = "allowed explicitly" if allow_cpu else "deploy.allow_cpu_mlx = true"
        return f"guard: no MLX Metal backend here; running qwen3 on CPU ({why}) — expect it to be very slow"
    machine = f"{platform.system()} {platform.machine()}"
    raise EngineError(
        f"Refusing to run the qwen3 engine on {machine}: MLX's Metal backend is not available, so the real "
        f"Qwen3-TTS models would run on CPU (hours per script). Fix: run this worker on an Apple-silicon Mac with a "
        f"native arm64 Python and `pip install mlx`; or choose CPU on purpose with `deploy.allow_cpu_mlx = true` "
        f"in your settings file, `{ALLOW_ENV}=1` in the worker's environment, or `readthrough worker "
        f"--allow-cpu-mlx`; or pick another engine (render.engine = \"preview\")."
    )


def guard_from_env(engine: str, settings: "Settings", models_dir=None, environ=None) -> str | None:
    """Apply the guard when the process runs under an apple-silicon deployment (GUARD_ENV set); None otherwise."""
    if not env_flag(GUARD_ENV, environ):
        return None
    return check_mlx_backend(engine, settings, models_dir, metal=metal_available(),
                             allow_cpu=env_flag(ALLOW_ENV, environ))
