"""The Engine protocol every speech engine implements, and the job/outcome types it speaks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..audio import Audio
from ..lock import VoiceLock


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

    def describe(self) -> dict:
        """Engine name and model ids: goes into reports and into line content keys."""

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
