"""The instant engine: deterministic, dependency-free "speech" for benches and orchestration tests.

Not speech: a voiced buzz (a few harmonics of a pitch derived from the voice) under a syllable envelope, plus a little
seeded noise. Length follows the text (≈ 0.065 s per character, ≥ 0.4 s), the pitch and timbre follow the voice, the
instruct nudges level (a whisper is noise only, a shout is louder). Same voice + text + seed ⇒ the same samples.
It renders hundreds of lines a second, so flow overhead can be measured without a model in the way.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ..audio import SAMPLE_RATE, Audio
from ..files import now_iso
from ..lock import VoiceLock
from .base import EngineInfo, RenderJob, RenderOutcome

MODEL_ID = "instant-1"
SECONDS_PER_CHAR = 0.065
MIN_SECONDS = 0.4


def _unit(*parts: object) -> float:
    """A stable number in [0, 1) from any strings/ints."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _voice_params(description: str, seed: int) -> dict:
    return {
        "f0": round(85.0 + 170.0 * _unit("f0", description, seed), 3),
        "bright": round(0.2 + 0.7 * _unit("bright", description, seed), 4),
        "rate": round(0.85 + 0.3 * _unit("rate", description, seed), 4),
    }


def _synth(params: dict, text: str, seed: int, instruct: str | None, rate: int = SAMPLE_RATE) -> Audio:
    seconds = max(MIN_SECONDS, len(text.strip()) * SECONDS_PER_CHAR / params.get("rate", 1.0))
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    rng = np.random.default_rng(seed)
    f0 = params["f0"] * (1.0 + 0.03 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum((params["bright"] ** k) * np.sin(k * phase) for k in range(1, 5))
    syllables = max(1, len(text.split()) * 2)
    envelope = np.clip(np.sin(np.pi * syllables * t / seconds), 0, None) ** 0.6
    noise = rng.standard_normal(n) * 0.05
    level = 0.25
    ins = (instruct or "").lower()
    if "whisper" in ins:
        voiced, noise = voiced * 0.0, noise * 3.0
    elif "shout" in ins:
        level = 0.6
    elif "quiet" in ins or "soft" in ins:
        level = 0.12
    samples = level * (voiced / 2.0 + noise) * envelope
    fade = min(n // 2, int(0.01 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        samples[:fade] *= ramp
        samples[-fade:] *= ramp[::-1]
    return Audio(samples.astype(np.float32), rate)


class InstantEngine:
    """Implements the Engine protocol (pipeline.engines.base) with synthetic, deterministic audio."""

    name = "instant"

    def __init__(self, settings=None, models_dir=None):
        self.settings = settings

    def info(self) -> EngineInfo:
        return EngineInfo(self.name, MODEL_ID, MODEL_ID, SAMPLE_RATE,
                          frozenset({"design", "clone", "preset", "instruct"}))

    def design(self, description: str, text: str, seeds: Sequence[int], language: str = "en") -> list[Audio]:
        return [_synth(_voice_params(description, s), text, s, None) for s in seeds]

    def _params_from_audio(self, audio: Audio) -> dict:
        digest = audio.digest()
        return _voice_params(digest, 0)

    def lock(self, audio: Audio, ref_text: str, language: str = "en", *, name: str, description: str = "",
             seed: int | None = None) -> VoiceLock:
        params = self._params_from_audio(audio)
        return VoiceLock(
            name=name, kind="instant", engine=self.name, model_id=MODEL_ID, language=language, ref_text=ref_text,
            description=description, seed=seed, created=now_iso(), params=params,
        )

    def preset_lock(self, speaker: str, instruct: str | None, language: str = "en", *, name: str) -> VoiceLock:
        params = _voice_params(f"preset:{speaker}", 0)
        params["instruct"] = instruct
        return VoiceLock(
            name=name, kind="instant", engine=self.name, model_id=MODEL_ID, language=language,
            description=f"preset {speaker}", created=now_iso(), params=params,
        )

    def speaker_embedding(self, audio: Audio) -> np.ndarray:
        p = self._params_from_audio(audio)
        return np.array([np.log(p["f0"]), p["bright"], p["rate"], 1.0], dtype=np.float32)

    def render(self, lock: VoiceLock, jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
        params = lock.params if "f0" in lock.params else _voice_params(lock.digest(), 0)
        out = []
        for job in jobs:
            if not job.text.strip():
                out.append(RenderOutcome(job.key, None, error="empty text: nothing to speak", seed=job.seed))
                continue
            audio = _synth(params, job.text, job.seed, job.instruct or params.get("instruct"))
            out.append(RenderOutcome(job.key, audio, tokens=len(job.text), seed=job.seed))
        return out

    def release_design(self) -> None:
        pass


def create(settings=None, models_dir=None) -> InstantEngine:
    return InstantEngine(settings, models_dir)
