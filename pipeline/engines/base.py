"""The engine contract: the Engine protocol every speech engine implements, what an engine says about itself
(`EngineInfo`), the base of per-engine option models (`EngineOptions`) and the job/outcome types it speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..audio import Audio
from ..lock import VoiceLock


CHARS_PER_SPOKEN_WORD = 10  # a longer written word is given time once per this many characters


def spoken_words(text: str) -> int:
    """Words of TEXT as time is allowed for them: a written word counts once per CHARS_PER_SPOKEN_WORD characters,
    so a drawn-out "Bernaaaaaaarrrrd?!!!" or a long compound gets the time it takes to say."""
    return sum(-(-len(w) // CHARS_PER_SPOKEN_WORD) for w in text.split())


def speech_allowance_seconds(text: str, seconds_per_word: float, min_seconds: float) -> float:
    """The most audio one take of TEXT may run before it counts as a runaway: seconds_per_word per spoken word,
    at least min_seconds. Engines size their generation budget from it; the render checks takes against it."""
    return max(min_seconds, spoken_words(text) * seconds_per_word)


Capability = Literal["design", "clone", "preset", "instruct", "speaker_vector"]


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is. `identity()` goes into reports and into every content key that the engine's output
    depends on (lines, picks, locks), so two engines or two models never share a cached result."""

    name: str
    model_id: str  # the model that speaks lines: what locks record
    design_model: str  # the model that designs voices from descriptions
    sample_rate: int  # of the audio it returns
    # design: voices from descriptions; clone: locks from audio; preset: named speakers; instruct: delivery
    # directions change the take; speaker_vector: `speaker_embedding` is a real speaker x-vector (else a proxy)
    capabilities: frozenset[Capability]
    models: dict[str, str] = field(default_factory=dict)  # further model identities that change output, by role
    options: dict[str, Any] = field(default_factory=dict)  # engine options that change output (e.g. quality)

    def identity(self) -> dict[str, Any]:
        return {"engine": self.name, "model_id": self.model_id, "base_model": self.model_id,
                "design_model": self.design_model, **self.models, **self.options}


class EngineOptions(BaseModel):
    """Base of an engine's typed options: the settings it reads, taken from `Settings` once (`from_settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def from_settings(cls, settings) -> "EngineOptions":
        return cls()


@dataclass(frozen=True)
class RenderJob:
    """One line to speak. All jobs in one `Engine.render` call share one VoiceLock."""

    key: str  # the line's content key
    text: str  # speech text (emphasis, notes removed)
    seed: int
    instruct: str | None = None  # delivery direction from parentheticals, where the engine supports it
    language: str = "en"


@dataclass(frozen=True)
class RenderOutcome:
    key: str
    audio: Audio | None
    error: str | None = None  # why it failed, when audio is None
    tokens: int = 0
    retakes: int = 0
    seed: int = 0  # the seed of the take that was kept

    @property
    def ok(self) -> bool:
        return self.audio is not None and self.error is None


@runtime_checkable
class Engine(Protocol):
    name: str

    def info(self) -> EngineInfo:
        """Name, model identities, sample rate, capabilities (see EngineInfo)."""

    def design(self, description: str, text: str, seeds: Sequence[int], language: str = "en") -> list[Audio]:
        """One audition per seed: `text` spoken in a voice matching `description`."""

    def lock(
        self, audio: Audio, ref_text: str, language: str = "en", *, name: str, description: str = "",
        seed: int | None = None,
    ) -> VoiceLock:
        """Freeze a chosen audition into a reusable voice."""

    def preset_lock(self, speaker: str, instruct: str | None, language: str = "en", *, name: str) -> VoiceLock:
        """A voice from a named preset speaker (CustomVoice), with an optional instruct."""

    def speaker_embedding(self, audio: Audio) -> np.ndarray | None:
        """A speaker vector for distinctness picking; None where the engine has none."""

    def render(self, lock: VoiceLock, jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
        """Speak every job in `lock`'s voice; one outcome per job, same order. Never raises for one bad line."""

    def release_design(self) -> None:
        """Free the design model after casting."""
