"""The `qwen3` engine: Qwen3-TTS on mlx-audio (0.6.2). VoiceDesign auditions, Base clone-prompt locks, CustomVoice
presets, and batched, seeded, guarded rendering through mlx-audio's public API.

Threading: MLX streams are thread-local, so every MLX call in this process runs on ONE dedicated worker thread
(`_WORKER`, one module-level thread that clears its MLX streams at exit). Public methods hop onto it, so
callers on any thread are safe.

Models: each model folder loads once per process (`_MODELS`, keyed by resolved path). Before loading, free memory
is checked against `settings.models.memory_factor` × the weights size. Hub ids resolve through the local Hugging
Face cache; offline, a missing id fails with a message that says how to fetch it or use a local folder.

Determinism: `mx.random.seed(seed)` before each generation call. A batch is seeded from its first job's seed, so a
line's audio is reproducible for the same batch; a batch of one (and every retake) is seeded from the line's own
seed and is bit-identical to `model.generate(ref_audio=, ref_text=)` with that seed.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import io
import math
import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..audio import Audio, resample
from ..errors import ModelError, SettingsError, VoiceLockError, did_you_mean
from ..lock import QWEN_LANGUAGES, VoiceLock, now_iso, prepare_reference
from .base import RenderJob, RenderOutcome
from .guard import env_flag

NAME = "qwen3"
SAMPLE_RATE = 24_000
FRAMES_PER_SECOND = 12.5  # Qwen3-TTS 12 Hz codec
MIN_EMBED_SAMPLES = SAMPLE_RATE // 2  # shorter clips are tiled up to this for the speaker encoder

# BCP-47 primary language subtag -> the model's language names (it silently ignores "en").
LANGUAGES = QWEN_LANGUAGES

# Roles and the settings key each one comes from (named in error messages).
ROLE_KEYS = {"voice_design": "models.voice_design", "base_final": "models.base_final",
             "base_draft": "models.base_draft", "custom_voice": "models.custom_voice"}
DIR_NAMES = {"voice_design": "voice-design", "base_final": "base", "base_draft": "base",
             "custom_voice": "custom-voice"}

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


def language_name(code: str) -> str:
    """BCP-47 (`en`, `en-GB`, `pt_BR`) or a model language name (`english`, `auto`) -> the model's name."""
    c = (code or "auto").strip().lower().replace("_", "-")
    if c == "auto" or c in LANGUAGES.values():
        return c
    primary = c.split("-", 1)[0]
    if primary in LANGUAGES:
        return LANGUAGES[primary]
    raise SettingsError(
        f"Language {code!r} is not one Qwen3-TTS speaks (render.language or a cast entry).{did_you_mean(c, LANGUAGES)}"
    )


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
        raise ModelError(f"Could not download model {model_id} ({key}): {e}. {_fetch_advice(model_id, key)}") from None


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


# --- rendering helpers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Take:
    audio: Audio | None
    tokens: int
    problem: str | None  # why this take is not usable


def max_tokens_for(text: str, seconds_per_word: float, min_seconds: float) -> int:
    """Generous codec-frame budget for `text`: seconds_per_word per word (≥ min_seconds), at 12.5 frames/s."""
    words = max(1, len(text.split()))
    return int(math.ceil(FRAMES_PER_SECOND * max(min_seconds, words * seconds_per_word)))


def _ref_samples(lock: VoiceLock) -> np.ndarray:
    """The lock's reference audio at the model's 24 kHz (locks made here already are)."""
    if lock.sample_rate == SAMPLE_RATE:
        return lock.ref_audio
    return resample(Audio(lock.ref_audio, lock.sample_rate), SAMPLE_RATE).samples


def _to_audio(x, sample_rate: int) -> Audio:
    return Audio(np.array(x, dtype=np.float32).reshape(-1), sample_rate)


def _judge(audio: Audio | None, tokens: int, cap: int, silence_rms: float) -> str | None:
    """Why a take is unusable, or None. mlx-audio gives no truncation flag, so hitting the cap counts as runaway."""
    if audio is None or audio.samples.size == 0 or tokens == 0:
        return "no audio (the model ended speech at the first frame)"
    if tokens >= cap:
        return f"runaway: hit the {cap}-frame limit ({cap / FRAMES_PER_SECOND:.1f} s) without ending speech"
    if not np.all(np.isfinite(audio.samples)):
        return "audio holds NaN or infinite samples"
    rms = float(np.sqrt(np.mean(np.square(audio.samples, dtype=np.float64))))
    if rms < silence_rms:
        return f"near-silent take (RMS {rms:.2e} < {silence_rms:.0e})"
    return None


# --- the engine ---------------------------------------------------------------------------------------------


def model_identity(model_id: str) -> str:
    """A path-independent identity for a model: hub ids as they are; a local folder as `local:<name>@<digest>`.

    Line keys, seeds and lock digests include the model identity. A folder path would tie them to where the
    checkpoint happens to lie (tests build tiny models in temp folders; users move folders), so local folders are
    identified by their content instead: config files, safetensors headers (names, shapes, offsets), sizes and the
    first and last MiB of each weights file — cheap even for multi-GB weights.
    """
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        return model_id
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")):
        rel = f.relative_to(folder).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}:{size}\n".encode())
        with open(f, "rb") as fh:
            if f.suffix == ".json" or size <= 2 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return f"local:{folder.resolve().name}@{h.hexdigest()[:16]}"


class Qwen3Engine:
    """Engine protocol (pipeline.engines.base) on mlx-audio's Qwen3-TTS."""

    name = NAME

    def __init__(self, settings, models_dir: str | os.PathLike | None = None):
        self.settings = settings
        m = settings.models
        ids = {"voice_design": m.voice_design, "base_final": m.base_final, "base_draft": m.base_draft,
               "custom_voice": m.custom_voice}
        if models_dir is not None:
            root = Path(models_dir).expanduser()
            ids = {role: str(root / DIR_NAMES[role]) for role in ids}
        self.model_ids = ids
        self._identity: dict[str, str] = {}
        self.base_role = "base_draft" if settings.render.quality == "draft" else "base_final"
        # (lock digest, base model id) -> (ref codes [16, T] int32, x-vector [D] float32) re-derived for a Base
        # model other than the lock's own (see `clone_prompt`).
        self._prompts: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    # -- ids and models --
    @property
    def base_id(self) -> str:
        """The Base model's identity (see `model_identity`): what locks record and line keys include."""
        return self.identity(self.base_role)

    def identity(self, role: str) -> str:
        if role not in self._identity:
            self._identity[role] = model_identity(self.model_ids[role])
        return self._identity[role]

    def describe(self) -> dict:
        return {
            "engine": NAME,
            "model_id": self.base_id,
            "base_model": self.base_id,
            "design_model": self.identity("voice_design"),
            "custom_voice_model": self.identity("custom_voice"),
            "quality": self.settings.render.quality,
        }

    def model(self, role: str):
        """The loaded mlx-audio model for a role ("base", "voice_design", "custom_voice"). Use only on the MLX
        thread (e.g. inside `on_mlx_thread`)."""
        role = self.base_role if role == "base" else role
        return on_mlx_thread(load_model, self.model_ids[role], role, self.settings.models.memory_factor)

    def _sampling(self) -> dict:
        r = self.settings.render
        return dict(temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, repetition_penalty=r.repetition_penalty)

    def _cap(self, text: str) -> int:
        r = self.settings.render
        return max_tokens_for(text, r.seconds_per_word, r.min_seconds)

    # -- design --
    def design(self, description: str, text: str, seeds: Sequence[int], language: str = "en") -> list[Audio]:
        return on_mlx_thread(self._design, description, text, list(seeds), language_name(language))

    def _design(self, description, text, seeds, lang):
        import mlx.core as mx

        model = self.model("voice_design")
        out = []
        for seed in seeds:
            # A take that ends at its first frame has nothing to audition: retake with seed+1, … (max_retakes).
            for attempt in range(self.settings.render.max_retakes + 1):
                mx.random.seed(int(seed) + attempt)
                parts = [r.audio for r in model.generate_voice_design(
                    text=text, instruct=description, language=lang, max_tokens=self._cap(text), **self._sampling())]
                if parts:
                    break
            else:
                raise ModelError(f"VoiceDesign model {self.model_ids['voice_design']} produced no audio for "
                                 f"{description!r} with seeds {seed}..{seed + attempt}; try other audition seeds.")
            out.append(_to_audio(mx.concatenate(parts), model.sample_rate))
        return out

    def release_design(self) -> None:
        def release():
            import mlx.core as mx

            drop_model(self.model_ids["voice_design"])
            mx.clear_cache()

        on_mlx_thread(release)

    # -- locks --
    def lock(self, audio: Audio, ref_text: str, language: str = "en", *, name: str, description: str = "",
             seed: int | None = None) -> VoiceLock:
        language_name(language)  # validate early
        ref = prepare_reference(resample(audio, SAMPLE_RATE))
        codes, x_vector = on_mlx_thread(self._derive_prompt, ref.samples, "base")
        return VoiceLock(
            name=name, kind="clone", engine=NAME, model_id=self.base_id, language=language, ref_text=ref_text,
            ref_audio=ref.samples, ref_codes=codes, x_vector=x_vector, description=description, seed=seed,
            created=now_iso(), sample_rate=SAMPLE_RATE,
        )

    def _derive_prompt(self, samples: np.ndarray, role: str) -> tuple[np.ndarray, np.ndarray]:
        """(reference codes [16, T] int32, x-vector [D] float32) of `samples` by the current Base model."""
        import mlx.core as mx

        model = self.model(role)
        wav = mx.array(np.ascontiguousarray(samples, dtype=np.float32))
        codes = model.speech_tokenizer.encode(wav[None, None, :])  # [1, 16, T]
        x_vector = model.extract_speaker_embedding(wav)  # [1, D]
        mx.eval(codes, x_vector)
        return np.array(codes[0], dtype=np.int32), np.array(x_vector, dtype=np.float32).reshape(-1)

    def clone_prompt(self, lock: VoiceLock) -> tuple[np.ndarray, np.ndarray]:
        """The clone prompt (codes, x-vector) for `lock` under the current Base model.

        A clone prompt belongs to the Base model that made it: codes and x-vector come from that model's codec
        and speaker encoder, and the 0.6B and 1.7B differ. A lock made with the other size (draft vs final) is
        re-derived from its reference audio with the current model, once per (lock, model) per process.
        """
        if lock.model_id == self.base_id:
            return lock.ref_codes, lock.x_vector
        key = (lock.digest(), self.base_id)
        if key not in self._prompts:
            self._prompts[key] = on_mlx_thread(self._derive_prompt, _ref_samples(lock), "base")
        return self._prompts[key]

    def preset_lock(self, speaker: str, instruct: str | None, language: str = "en", *, name: str) -> VoiceLock:
        language_name(language)
        speakers = on_mlx_thread(lambda: list(self.model("custom_voice").get_supported_speakers()))
        wanted = speaker.strip().lower()
        if wanted not in [s.lower() for s in speakers]:
            raise VoiceLockError(
                f"Voice {name!r}: preset speaker {speaker!r} is not one of model {self.model_ids['custom_voice']}'s "
                f"speakers.{did_you_mean(wanted, speakers)}"
            )
        return VoiceLock(name=name, kind="preset", engine=NAME, model_id=self.identity("custom_voice"),
                         language=language, params={"speaker": wanted, "instruct": instruct or None},
                         created=now_iso(), sample_rate=SAMPLE_RATE)

    def speaker_embedding(self, audio: Audio) -> np.ndarray | None:
        samples = resample(audio, SAMPLE_RATE).samples
        return on_mlx_thread(lambda: self._derive_x_vector(samples))

    def _derive_x_vector(self, samples: np.ndarray) -> np.ndarray:
        import mlx.core as mx

        samples = np.ascontiguousarray(samples, np.float32)
        if samples.size == 0:
            raise ModelError("Cannot take a speaker embedding of empty audio.")
        if samples.size < MIN_EMBED_SAMPLES:
            # The speaker encoder's convolutions need ~0.5 s of frames; repeating a short clip keeps its spectrum.
            samples = np.tile(samples, -(-MIN_EMBED_SAMPLES // samples.size))[:MIN_EMBED_SAMPLES]
        x = self.model("base").extract_speaker_embedding(mx.array(samples))
        return np.array(x, dtype=np.float32).reshape(-1)

    # -- rendering --
    def render(self, lock: VoiceLock, jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
        jobs = list(jobs)
        if not jobs:
            return []
        if lock.kind not in ("clone", "preset"):
            raise VoiceLockError(f"Voice {lock.name!r} is a {lock.kind!r} lock made by the {lock.engine!r} engine; "
                                 f"the qwen3 engine renders clone and preset locks. Re-cast with --engine qwen3.")
        if lock.kind == "clone" and (lock.ref_audio is None or not lock.ref_text.strip()):
            raise VoiceLockError(f"Voice {lock.name!r}: clone lock has no reference audio or text; re-lock the voice "
                                 f"with `readthrough cast SCRIPT --force`.")
        for j in jobs:
            language_name(j.language)
        return on_mlx_thread(self._render, lock, jobs)

    def _render(self, lock: VoiceLock, jobs: list[RenderJob]) -> list[RenderOutcome]:
        outcomes: dict[int, RenderOutcome] = {}
        first: dict[int, _Take] = {}
        if lock.kind == "clone":
            self._prime_icl_cache(lock)
            size = self.settings.render.batch_size
            for lang, idx in self._by_language(jobs).items():
                for start in range(0, len(idx), size):
                    chunk = idx[start:start + size]
                    for i, take in zip(chunk, self._clone_takes(lock, [jobs[i] for i in chunk], lang,
                                                                jobs[chunk[0]].seed)):
                        first[i] = take
        else:
            for i, job in enumerate(jobs):
                first[i] = self._preset_take(lock, job, job.seed)
        for i, job in enumerate(jobs):
            outcomes[i] = self._settle(lock, job, first[i])
        return [outcomes[i] for i in range(len(jobs))]

    @staticmethod
    def _by_language(jobs: list[RenderJob]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault(language_name(j.language), []).append(i)
        return groups

    def _settle(self, lock: VoiceLock, job: RenderJob, take: _Take) -> RenderOutcome:
        """Keep a good first take; otherwise retake this job alone with seed+1, seed+2, … up to max_retakes."""
        seed, retakes, problems = job.seed, 0, []
        while take.problem is not None:
            problems.append(take.problem)
            if retakes >= self.settings.render.max_retakes:
                reason = take.problem if len(set(problems)) == 1 else "; ".join(dict.fromkeys(problems))
                return RenderOutcome(key=job.key, audio=None, tokens=take.tokens, retakes=retakes, seed=seed,
                                     error=f"{reason} (after {retakes + 1} takes, seeds {job.seed}..{seed})")
            retakes += 1
            seed = job.seed + retakes
            if lock.kind == "clone":
                take = self._clone_takes(lock, [job], language_name(job.language), seed)[0]
            else:
                take = self._preset_take(lock, job, seed)
        return RenderOutcome(key=job.key, audio=take.audio, tokens=take.tokens, retakes=retakes, seed=seed)

    def _prime_icl_cache(self, lock: VoiceLock) -> None:
        """Hand mlx-audio the lock's own reference codes, so the voice comes from the lock file rather than from
        re-encoding its audio (identical on the machine that made it; it also skips the encode). mlx-audio 0.6.2
        keys its in-process ICL cache by (ref_text, (size, sum of the reference samples)); the x-vector is always
        recomputed from the reference audio by mlx-audio. Without that private cache nothing breaks: mlx-audio
        encodes the reference itself."""
        import mlx.core as mx

        model = self.model("base")
        cache = getattr(model, "_icl_cache", None)
        if not isinstance(cache, dict) or lock.ref_codes is None or lock.ref_audio is None:
            return
        codes, _ = self.clone_prompt(lock)
        wav = mx.array(_ref_samples(lock))
        key = (lock.ref_text, (wav.size, float(wav.sum())))
        if key in cache:
            return
        ids = model.tokenizer.encode(f"<|im_start|>assistant\n{lock.ref_text}<|im_end|>\n")
        text_ids = mx.array(ids)[None, :][:, 3:-2]
        cache[key] = (mx.array(np.asarray(codes, dtype=np.int32))[None], text_ids)

    def _clone_takes(self, lock: VoiceLock, jobs: list[RenderJob], lang: str, seed: int) -> list[_Take]:
        """One batched Base ICL call for `jobs` (same voice and language), seeded with `seed`."""
        import mlx.core as mx

        model = self.model("base")
        caps = [self._cap(j.text) for j in jobs]
        texts = [j.text for j in jobs]
        mx.random.seed(int(seed))
        results: dict[int, Any] = {}
        try:
            for r in model.batch_generate(texts, ref_audio=mx.array(_ref_samples(lock)), ref_text=lock.ref_text,
                                          lang_code=lang, max_tokens=max(caps), **self._sampling()):
                results[r.sequence_idx] = r
        except Exception as e:  # one bad batch must not stop the script: each job gets the reason (and retakes)
            return [_Take(None, 0, f"engine error: {type(e).__name__}: {e}") for _ in jobs]
        takes = []
        for i, (job, cap) in enumerate(zip(jobs, caps)):
            # mlx-audio's batched ICL also stops each line at max(75, 6 × its text tokens) frames (0.6.2).
            internal = max(75, 6 * len(model.tokenizer.encode(job.text)))
            r = results.get(i)
            audio = _to_audio(r.audio, model.sample_rate) if r is not None else None
            tokens = int(r.token_count) if r is not None else 0
            takes.append(_Take(audio, tokens, _judge(audio, tokens, min(cap, internal),
                                                     self.settings.render.silence_rms)))
        return takes

    def _preset_take(self, lock: VoiceLock, job: RenderJob, seed: int) -> _Take:
        import mlx.core as mx

        model = self.model("custom_voice")
        cap = self._cap(job.text)
        instruct = " ".join(x for x in (lock.params.get("instruct"), job.instruct) if x) or None
        mx.random.seed(int(seed))
        try:
            parts = list(model.generate_custom_voice(
                text=job.text, speaker=lock.params["speaker"], language=language_name(job.language),
                instruct=instruct, max_tokens=cap, **self._sampling()))
        except Exception as e:
            return _Take(None, 0, f"engine error: {type(e).__name__}: {e}")
        if not parts:
            return _Take(None, 0, _judge(None, 0, cap, self.settings.render.silence_rms))
        audio = _to_audio(mx.concatenate([p.audio for p in parts]), model.sample_rate)
        tokens = sum(int(p.token_count) for p in parts)
        return _Take(audio, tokens, _judge(audio, tokens, cap, self.settings.render.silence_rms))


def create(settings, models_dir=None) -> Qwen3Engine:
    """Registry factory: the qwen3 engine for `settings` (models_dir replaces the model ids with its folders)."""
    return Qwen3Engine(settings, models_dir)


__all__ = ["Qwen3Engine", "create", "language_name", "load_model", "max_tokens_for", "on_mlx_thread",
           "resolve_model", "available_memory_bytes", "check_memory"]
