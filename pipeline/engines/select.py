"""Engine selection: turn `render.engine` (possibly "auto") into a concrete engine name and a one-line reason.

`auto` picks qwen3 when its models can be had without surprises, else the preview engine (espeak-ng), so the README's
main command gives a real multi-voice read-through on any machine. Never touches the network unless the hub may be
used (HF_HUB_OFFLINE unset), and then only for one HEAD request (~1 s timeout); never imports an engine.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EngineError, did_you_mean
from . import AUTO, engine_names
from .guard import env_flag

if TYPE_CHECKING:
    from ..config import Settings

MODEL_SUBDIRS = ("base", "voice-design")  # what qwen3 needs in a --models DIR (custom-voice is optional)
HUB_TIMEOUT_S = 1.0


def resolve_engine(settings: "Settings", models_dir: str | os.PathLike | None = None, *,
                   engine: str | None = None) -> tuple[str, str]:
    """(engine name, one-line reason). `engine` overrides `settings.render.engine` (e.g. a CLI flag).

    Explicit names are validated against the registry and returned as they are. For "auto": qwen3 when its models
    are available locally — `models_dir` holding base/ and voice-design/, or the settings' model ids being local
    folders, or the hub ids being in the local Hugging Face cache — or when the hub is reachable from a machine that
    can run MLX on a GPU; otherwise preview.
    """
    name = (engine or settings.render.engine or AUTO).strip().lower()
    if name != AUTO:
        if name not in engine_names():
            raise EngineError(f"Unknown engine {name!r} (render.engine or --engine).{did_you_mean(name, engine_names())}"
                              f" Use one of these or {AUTO!r}.")
        return name, f"{name}: chosen explicitly (render.engine or --engine)"
    return _auto(settings, models_dir)


def _auto(settings: "Settings", models_dir) -> tuple[str, str]:
    if models_dir is not None:
        root = Path(models_dir).expanduser()
        missing = [d for d in MODEL_SUBDIRS if not _is_model_dir(root / d)]
        if not missing:
            return "qwen3", f"auto: Qwen3-TTS models found in {root}"
        return "preview", (f"auto: {root} lacks {', '.join(m + '/' for m in missing)} (each a model folder with "
                           f"config.json), so the espeak-ng preview engine runs instead")
    ids = _required_ids(settings)
    if all(_is_model_dir(Path(i).expanduser()) for i in ids):
        return "qwen3", "auto: Qwen3-TTS models found in local folders named in settings"
    if all(_is_model_dir(Path(i).expanduser()) or _in_hf_cache(i) for i in ids):
        return "qwen3", "auto: Qwen3-TTS models found in the local Hugging Face cache"
    if _hub_offline():
        return "preview", ("auto: Qwen3-TTS models are not on this machine and HF_HUB_OFFLINE is set, so the "
                           "espeak-ng preview engine runs (fetch the models or pass --models DIR for full quality)")
    if not _hub_reachable(ids[0]):
        return "preview", ("auto: Qwen3-TTS models are not on this machine and the Hugging Face hub is unreachable, "
                           "so the espeak-ng preview engine runs (pass --models DIR for full quality)")
    if not _mlx_accelerated(settings):
        return "preview", ("auto: Qwen3-TTS models are not on this machine and MLX has no GPU here, so the espeak-ng "
                           "preview engine runs (set render.engine = \"qwen3\" to download and run them on CPU)")
    return "qwen3", "auto: the Hugging Face hub is reachable; Qwen3-TTS models download on first use"


def _required_ids(settings: "Settings") -> list[str]:
    m = settings.models
    base = m.base_final if settings.render.quality == "final" else m.base_draft
    return [m.voice_design, base]


def _is_model_dir(path: Path) -> bool:
    try:
        return path.is_dir() and (path / "config.json").is_file()
    except OSError:
        return False


def _in_hf_cache(repo_id: str) -> bool:
    """The hub repo's config.json and at least one .safetensors file are in the local cache (no network)."""
    if repo_id.count("/") != 1 or Path(repo_id).expanduser().exists():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # malformed id or unreadable cache: treat as absent
        return False
    if not isinstance(config, str):
        return False
    return any(Path(config).parent.glob("*.safetensors"))


def _hub_offline() -> bool:
    return any(env_flag(v) for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


HUB_MEMO_S = 300.0  # how long a probe's answer stands: a run asks once; a long-lived worker asks again later
_clock = time.monotonic
_HUB_ANSWERS: dict[tuple[str, str], tuple[bool, float]] = {}  # (endpoint, repo id) → (answered 200, when)
_HUB_SILENT: dict[str, float] = {}  # endpoint → when it last failed to answer: no repo on it is probed meanwhile


def forget_hub_answers() -> None:
    """Forget this process's hub probes (tests; a long-lived process whose network changed)."""
    _HUB_ANSWERS.clear()
    _HUB_SILENT.clear()


def _hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _hub_reachable(repo_id: str, timeout: float = HUB_TIMEOUT_S) -> bool:
    """The hub answers 200 for `repo_id`'s model info within `timeout` (an answering proxy is not the hub).

    Asked at most once per `HUB_MEMO_S` for each endpoint and repo (engine selection and the preflight both ask),
    and not at all meanwhile once the endpoint has failed to answer for another repo: each probe may cost the
    whole timeout."""
    endpoint, now = _hub_endpoint(), _clock()
    key = (endpoint, repo_id)
    if key in _HUB_ANSWERS and now - _HUB_ANSWERS[key][1] < HUB_MEMO_S:
        return _HUB_ANSWERS[key][0]
    if now - _HUB_SILENT.get(endpoint, -math.inf) < HUB_MEMO_S:
        return False
    answer = _probe_hub(endpoint, repo_id, timeout)
    if answer is None:
        _HUB_SILENT[endpoint] = now
        return False
    _HUB_ANSWERS[key] = (answer, now)
    return answer


def _probe_hub(endpoint: str, repo_id: str, timeout: float) -> bool | None:
    """One HEAD request for `repo_id`'s model info: True on 200, False on any other answer, None when the endpoint
    does not answer (no network, timeout, refused, a malformed endpoint)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{endpoint}/api/models/{repo_id}", method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:  # it answered, with an error status (404: no such repo; 401: gated …)
        return False
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _mlx_accelerated(settings: "Settings") -> bool:
    """Apple silicon (Metal) or an MLX CUDA backend, or the user allows CPU MLX (deploy.allow_cpu_mlx)."""
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return True
    if getattr(settings.deploy, "allow_cpu_mlx", False):
        return True
    try:
        import mlx.core as mx

        return bool(mx.cuda.is_available())
    except Exception:
        return False
