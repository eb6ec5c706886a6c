"""The MLX runtime of this process: the one thread every MLX call runs on, loading mlx-audio models (once per
process, after a free-memory check) and dropping them. Used by the qwen3 engine and the LLM analyzer.

MLX is not thread-safe across streams (a stream made on one thread fails on another), so every MLX call goes
through `on_mlx_thread`.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import io
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from .engines.guard import env_flag
from .errors import ModelError

# Roles and the settings key each one comes from (named in error messages).
ROLE_KEYS = {"voice_design": "models.voice_design", "base_final": "models.base_final",
             "base_draft": "models.base_draft", "custom_voice": "models.custom_voice"}
# --- the one MLX thread -------------------------------------------------------------------------------------

class _MlxWorker:
    """One long-lived thread that runs every MLX call of this process, in submission order.

    Not a ThreadPoolExecutor: MLX (0.32) needs `mx.clear_streams()` called on each thread that used it before
    the interpreter shuts down, or the process may abort at exit ("terminate called without an active
    exception", exit 134). This worker clears its streams (and drops the loaded models) when told to stop at
    interpreter shutdown, before Python joins it.
    """

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def is_current(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, fn: Callable) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="readthrough-mlx", daemon=True)
                self._thread.start()
                _register_shutdown(self.stop)
            self._queue.put((future, fn))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as e:  # handed to the caller's thread
                    future.set_exception(e)
        _MODELS.clear()
        with contextlib.suppress(Exception):
            import gc

            import mlx.core as mx

            gc.collect()
            mx.clear_streams()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued work, release MLX state on the worker, and end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)


def _register_shutdown(fn: Callable) -> None:
    """Run `fn` at interpreter shutdown before threads are joined (how concurrent.futures stops its workers);
    plain atexit (later) where that hook is missing."""
    register = getattr(threading, "_register_atexit", None)
    try:
        register(fn)
    except Exception:
        atexit.register(fn)


def _clear_main_streams() -> None:
    with contextlib.suppress(Exception):
        import mlx.core as mx

        mx.clear_streams()


_WORKER = _MlxWorker()
atexit.register(_clear_main_streams)  # the main thread may have touched MLX too (arrays made by callers)


def on_mlx_thread(fn: Callable, *args, **kwargs):
    """Run `fn` on the single MLX worker thread and return its result (directly when already on it)."""
    if _WORKER.is_current():
        return fn(*args, **kwargs)
    return _WORKER.submit(lambda: fn(*args, **kwargs)).result()


# --- model resolution and loading ---------------------------------------------------------------------------

_MODELS: dict[str, Any] = {}  # resolved folder -> loaded mlx-audio Model (MLX thread only)
_FOLDERS: dict[str, str] = {}  # model id as configured -> resolved folder it was loaded from


def _offline() -> bool:
    if env_flag("HF_HUB_OFFLINE"):
        return True
    with contextlib.suppress(Exception):
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    return False


def _fetch_advice(model_id: str, key: str) -> str:
    return (f"On a machine with network access run `huggingface-cli download {model_id}` (then copy the Hugging "
            f"Face cache, ~/.cache/huggingface, here), or point {key} at a local model folder in your settings file "
            f"(or pass --models DIR with DIR/base, DIR/voice-design, DIR/custom-voice; "
            f"`readthrough make-tiny-models DIR` writes tiny test ones).")


def resolve_model(model_id: str, key: str = "models") -> Path:
    """A local folder for `model_id`: the folder itself, or its snapshot in the Hugging Face cache (downloaded
    when online). Raises ModelError with the fix when it cannot be found."""
    path = Path(model_id).expanduser()
    if path.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") != 1:
        if not path.is_dir():
            raise ModelError(
                f"Model folder {path} ({key}) does not exist. Create tiny test models with "
                f"`readthrough make-tiny-models DIR` and pass --models DIR, or set {key} to a folder holding "
                f"config.json and *.safetensors (or to a Hugging Face id such as mlx-community/...)."
            )
        if not (path / "config.json").is_file():
            raise ModelError(f"Model folder {path} ({key}) has no config.json: it is not a Qwen3-TTS model folder. "
                             f"Point {key} at a folder downloaded with `huggingface-cli download ID --local-dir DIR`.")
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:
        pass
    if _offline():
        raise ModelError(f"Model {model_id} ({key}) is not in the local Hugging Face cache and this machine is "
                         f"offline (HF_HUB_OFFLINE). {_fetch_advice(model_id, key)}")
    try:
        from mlx_audio.utils import get_model_path

        return Path(get_model_path(model_id))
    except Exception as e:
        raise ModelError(f"Could not get model {model_id} ({key}): it is not on this machine and could not be "
                         f"downloaded. {_fetch_advice(model_id, key)}", detail=f"{type(e).__name__}: {e}") from None


def weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors") if p.is_file())


def available_memory_bytes() -> int | None:
    """Memory the OS can give us now: MemAvailable on Linux; free+inactive+purgeable pages on macOS; else None."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(Exception):
        import subprocess

        out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5).stdout
        page = int(out.split("page size of")[1].split()[0]) if "page size of" in out else 4096
        pages = 0
        for line in out.splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"):
                pages += int(value.strip().rstrip("."))
        if pages:
            return pages * page
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return None


def smaller_alternative(model_id: str, role: str) -> str:
    """A hint naming a smaller model for `model_id`."""
    hints = []
    if role in ("base_final",) or "1.7B-Base" in model_id:
        hints.append('render with quality "draft" (the 0.6B Base, models.base_draft)')
    if model_id.endswith("-bf16"):
        hints.append(f"a quantized build such as {model_id[: -len('-bf16')]}-8bit or -4bit")
    hints.append("the preview engine (--engine preview), which needs no model")
    return "; or ".join(hints)


def check_memory(folder: Path, model_id: str, role: str, factor: float) -> None:
    """Fail before loading, instead of being killed, when free memory is below factor × weights size."""
    need = int(weights_bytes(folder) * factor)
    free = available_memory_bytes()
    if free is not None and need > free:
        raise ModelError(
            f"Not enough free memory to load {model_id} ({ROLE_KEYS.get(role, role)}): needs about {need / 2**30:.1f} "
            f"GiB ({factor}× its weights), {free / 2**30:.1f} GiB is free. Close other programs, or use a smaller "
            f"model: {smaller_alternative(model_id, role)}."
        )


@contextlib.contextmanager
def _quiet_transformers():
    """transformers warns that a `qwen3_tts` config is not one of its model types on every load: noise."""
    try:
        from transformers.utils import logging as hf_logging
    except Exception:
        yield
        return
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)


def load_model(model_id: str, role: str, memory_factor: float):
    """Load (once per process) the mlx-audio model for `model_id`. Call on the MLX thread."""
    key = ROLE_KEYS.get(role, role)
    if _FOLDERS.get(model_id) in _MODELS:
        return _MODELS[_FOLDERS[model_id]]
    folder = resolve_model(model_id, key)
    cache_key = str(folder.resolve())
    if cache_key in _MODELS:
        _FOLDERS[model_id] = cache_key
        return _MODELS[cache_key]
    check_memory(folder, model_id, role, memory_factor)
    from mlx_audio.tts.utils import load

    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), _quiet_transformers():
            model = load(str(folder))
    except Exception as e:
        raise ModelError(f"Could not load model {model_id} ({key}) from {folder}: {e}. Check the folder is a "
                         f"complete Qwen3-TTS checkpoint for mlx-audio 0.6.2.") from None
    # mlx-audio only prints a warning when these fail; a model without them cannot speak.
    for attr, what in (("tokenizer", "text tokenizer (tokenizer.json, tokenizer_config.json)"),
                       ("speech_tokenizer", "speech tokenizer (speech_tokenizer/)")):
        if getattr(model, attr, None) is None:
            said = " ".join(log.getvalue().split())[-400:]
            raise ModelError(f"Model {model_id} ({key}) loaded from {folder} without its {what}. "
                             f"mlx-audio said: {said or '(nothing)'}. Re-download the model or rebuild the folder.")
    if getattr(model, "model_type", None) != "qwen3_tts":
        raise ModelError(f"Model {model_id} ({key}) is not a Qwen3-TTS model (got {model.model_type!r}).")
    _MODELS[cache_key] = model
    _FOLDERS[model_id] = cache_key
    return model


def drop_model(model_id: str) -> bool:
    """Forget the model loaded for `model_id` (MLX thread) so its memory can be freed. True when one was dropped."""
    key = _FOLDERS.pop(model_id, None)
    return key is not None and _MODELS.pop(key, None) is not None
