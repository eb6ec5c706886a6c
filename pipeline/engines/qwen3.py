"""The `qwen3` engine: Qwen3-TTS on mlx-audio (0.6.2). VoiceDesign auditions, Base clone-prompt locks, CustomVoice
presets, and batched, seeded, guarded rendering through mlx-audio's public API.

Threading: MLX streams are thread-local, so every MLX call in this process runs on ONE dedicated worker thread
(`_WORKER`, one module-level thread that clears its MLX streams at exit). Public methods hop onto it, so
callers on any thread are safe.

Models: each model folder loads once per process (`_MODELS`, keyed by resolved path). Before loading, free memory
is checked against `settings.models.memory_factor` × the weights size. Hub ids resolve through the local Hugging
Face cache; offline, a missing id fails with a message that says how to fetch it or use a local folder.

Determinism: every clone line samples from its own random stream (`mx.random.key(line seed)`, split per step;
pipeline.engines.qwen3_session), so its tokens do not depend on which lines share its batch; a retake uses seed+1,
…. Preset (CustomVoice) lines render one at a time after `mx.random.seed(line seed)`.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..audio import Audio, resample
from ..errors import ModelError, VoiceLockError, did_you_mean
from ..files import now_iso
from ..languages import language_name
from ..lock import VoiceLock, prepare_reference
from ..mlx_runtime import drop_model, load_model, on_mlx_thread
from .base import EngineInfo, EngineOptions, RenderJob, RenderOutcome, speech_allowance_seconds

NAME = "qwen3"
SAMPLE_RATE = 24_000
FRAMES_PER_SECOND = 12.5  # Qwen3-TTS 12 Hz codec
MIN_EMBED_SAMPLES = SAMPLE_RATE // 2  # shorter clips are tiled up to this for the speaker encoder

DIR_NAMES = {"voice_design": "voice-design", "base_final": "base", "base_draft": "base",
             "custom_voice": "custom-voice"}

# --- rendering helpers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Take:
    audio: Audio | None
    tokens: int
    problem: str | None  # why this take is not usable


def max_tokens_for(text: str, seconds_per_word: float, min_seconds: float) -> int:
    """Codec-frame budget for `text`: its speech allowance (base.speech_allowance_seconds) at 12.5 frames/s."""
    return int(math.ceil(FRAMES_PER_SECOND * speech_allowance_seconds(text, seconds_per_word, min_seconds)))


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


class Qwen3Options(EngineOptions):
    """The settings the qwen3 engine reads ([render] sampling, runaway guard and batching; models.memory_factor;
    whether `[delivery] mode` prefixes instructs to clone prompts — line keys carry that per line, not here)."""

    quality: Literal["draft", "final"]
    batch_size: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    max_retakes: int
    seconds_per_word: float
    min_seconds: float
    silence_rms: float
    memory_factor: float
    prefix_instructs: bool = False

    @classmethod
    def from_settings(cls, settings) -> "Qwen3Options":
        r = settings.render
        return cls(quality=r.quality, batch_size=r.batch_size, temperature=r.temperature, top_k=r.top_k,
                   top_p=r.top_p, repetition_penalty=r.repetition_penalty, max_retakes=r.max_retakes,
                   seconds_per_word=r.seconds_per_word, min_seconds=r.min_seconds, silence_rms=r.silence_rms,
                   memory_factor=settings.models.memory_factor, prefix_instructs=settings.delivery.instruct)


class Qwen3Engine:
    """Engine protocol (pipeline.engines.base) on mlx-audio's Qwen3-TTS."""

    name = NAME

    def __init__(self, settings, models_dir: str | os.PathLike | None = None):
        self.options = Qwen3Options.from_settings(settings)
        language_name(settings.render.language)  # a language Qwen3-TTS cannot speak fails here, before any work
        m = settings.models
        ids = {"voice_design": m.voice_design, "base_final": m.base_final, "base_draft": m.base_draft,
               "custom_voice": m.custom_voice}
        if models_dir is not None:
            root = Path(models_dir).expanduser()
            ids = {role: str(root / DIR_NAMES[role]) for role in ids}
        self.model_ids = ids
        self._identity: dict[str, str] = {}
        self.base_role = "base_draft" if self.options.quality == "draft" else "base_final"
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

    def info(self) -> EngineInfo:
        return EngineInfo(NAME, self.base_id, self.identity("voice_design"), SAMPLE_RATE,
                          frozenset({"design", "clone", "preset", "instruct", "speaker_vector"}),
                          models={"custom_voice_model": self.identity("custom_voice")},
                          options={"quality": self.options.quality})

    def model(self, role: str):
        """The loaded mlx-audio model for a role ("base", "voice_design", "custom_voice"). Use only on the MLX
        thread (e.g. inside `on_mlx_thread`)."""
        role = self.base_role if role == "base" else role
        return on_mlx_thread(load_model, self.model_ids[role], role, self.options.memory_factor)

    def _sampling(self) -> dict:
        r = self.options
        return dict(temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, repetition_penalty=r.repetition_penalty)

    def _cap(self, text: str) -> int:
        r = self.options
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
            for attempt in range(self.options.max_retakes + 1):
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
    def check_lock(self, lock: VoiceLock) -> None:
        """Raise VoiceLockError, saying the fix, for a lock this engine cannot render."""
        if lock.kind not in ("clone", "preset"):
            raise VoiceLockError(f"Voice {lock.name!r} is a {lock.kind!r} lock made by the {lock.engine!r} engine; "
                                 f"the qwen3 engine renders clone and preset locks. Re-cast with --engine qwen3.")
        if lock.kind == "clone" and (lock.ref_audio is None or not lock.ref_text.strip()):
            raise VoiceLockError(f"Voice {lock.name!r}: clone lock has no reference audio or text; re-lock the voice "
                                 f"with `readthrough cast SCRIPT --force`.")

    def session(self, batch_size: int | None = None, policy: str = "continuous"):
        """A render session (pipeline.engines.session): clone lines of any voices share continuous batches, each
        line on its own random stream (pipeline.engines.qwen3_session)."""
        from .qwen3_session import Qwen3RenderSession

        return Qwen3RenderSession(self, batch_size or self.options.batch_size, policy)

    def prompt_builder(self):
        """The ICL prompt builder of the current Base model, one per process (MLX thread)."""
        from .qwen3_session import PromptBuilder

        model = self.model("base")
        builder = getattr(model, "_readthrough_prompts", None)
        if builder is None:
            builder = model._readthrough_prompts = PromptBuilder(model)
        return builder

    def render(self, lock: VoiceLock, jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
        """`jobs` in `lock`'s voice through one session: the same tokens as inside any other batch."""
        from .session import SessionRow

        jobs = list(jobs)
        if not jobs:
            return []
        outcomes: dict[str, RenderOutcome] = {}
        self.session().run([SessionRow(lock, j) for j in jobs], lambda o: outcomes.__setitem__(o.key, o))
        return [outcomes[j.key] for j in jobs]

    def render_preset(self, lock: VoiceLock, job: RenderJob) -> RenderOutcome:
        """One CustomVoice line, retaken with seed+1, … up to max_retakes (MLX thread)."""
        return self._settle(lock, job, self._preset_take(lock, job, job.seed))

    def _settle(self, lock: VoiceLock, job: RenderJob, take: _Take) -> RenderOutcome:
        """Keep a good first take; otherwise retake this job alone with seed+1, seed+2, … up to max_retakes."""
        seed, retakes, problems = job.seed, 0, []
        while take.problem is not None:
            problems.append(take.problem)
            if retakes >= self.options.max_retakes:
                reason = take.problem if len(set(problems)) == 1 else "; ".join(dict.fromkeys(problems))
                return RenderOutcome(key=job.key, audio=None, tokens=take.tokens, retakes=retakes, seed=seed,
                                     error=f"{reason} (after {retakes + 1} takes, seeds {job.seed}..{seed})")
            retakes += 1
            seed = job.seed + retakes
            take = self._preset_take(lock, job, seed)
        return RenderOutcome(key=job.key, audio=take.audio, tokens=take.tokens, retakes=retakes, seed=seed)

    def prompt_instruct(self, job: RenderJob) -> str | None:
        """The instruct prefixed to `job`'s clone prompt: its own with `[delivery] mode` instruct or both, else none
        (Base in-context cloning has no instruct of its own; docs/delivery.md)."""
        return job.instruct if self.options.prefix_instructs and job.instruct else None

    def clone_prompt_length(self, lock: VoiceLock, text: str, instruct: str | None = None,
                            language: str = "en") -> int:
        """Prefill length (tokens) of `text`'s clone prompt in `lock`'s voice, with `instruct` prefixed if given."""
        def measure():
            builder = self.prompt_builder()
            codes, x_vector = self.clone_prompt(lock)
            lang = language_name(language)
            voice = builder.voice((lock.digest(), self.base_id, lang), codes, x_vector, lock.ref_text, lang)
            return int(builder.row(voice, text, instruct).shape[1])

        return on_mlx_thread(measure)

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
            return _Take(None, 0, _judge(None, 0, cap, self.options.silence_rms))
        audio = _to_audio(mx.concatenate([p.audio for p in parts]), model.sample_rate)
        tokens = sum(int(p.token_count) for p in parts)
        return _Take(audio, tokens, _judge(audio, tokens, cap, self.options.silence_rms))


def create(settings, models_dir=None) -> Qwen3Engine:
    """Registry factory: the qwen3 engine for `settings` (models_dir replaces the model ids with its folders)."""
    return Qwen3Engine(settings, models_dir)


__all__ = ["Qwen3Engine", "Qwen3Options", "create", "max_tokens_for", "model_identity"]
