"""Fakes for casting tests: a queue-driven LLM client and an engine whose speaker embeddings are chosen by the test.

- `QueueClient(*answers)`: `complete(prompt)` returns the next queued answer (str) or raises it (Exception);
  every prompt is kept in `prompts`. An empty queue is a test error, not a silent default.
- `VectorEngine(vectors)`: the deterministic instant engine (real audio files), but `speaker_embedding` returns
  `vectors(seed)` (a callable) or `vectors[seed]` (a mapping) for the seed the audio (or its prepared reference) was designed with, so pick
  tests control distances exactly. It counts design calls and the seeds asked for.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Mapping

import numpy as np

from pipeline.audio import Audio
from pipeline.engines.base import EngineInfo
from pipeline.engines.instant import InstantEngine
from pipeline.lock import prepare_reference


class QueueClient:
    def __init__(self, *answers):
        self.answers = deque(answers)
        self.prompts: list[str] = []

    def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.answers:
            raise AssertionError("QueueClient: no answer queued for this prompt")
        answer = self.answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer


def one_hot(i: int, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i % dim] = 1.0
    return v


class VectorEngine(InstantEngine):
    name = "vector-fake"

    def __init__(self, vectors: Callable[[int], np.ndarray] | Mapping[int, np.ndarray] | None = None):
        super().__init__()
        self.vectors = vectors
        self.seed_of: dict[str, int] = {}
        self.design_calls = 0
        self.designed_seeds: list[int] = []
        self.lock_calls = 0
        self.released = False

    def info(self) -> EngineInfo:
        return EngineInfo(self.name, "fake-base-1", "fake-design-1", 24_000, frozenset({"design", "clone", "preset"}))

    def design(self, description, text, seeds, language="en"):
        self.design_calls += 1
        self.designed_seeds.extend(seeds)
        out = super().design(description, text, seeds, language)
        for s, a in zip(seeds, out):
            # casting embeds the prepared reference (trimmed, silence appended), not the raw take
            for audio in (a, prepare_reference(a)):
                self.seed_of[audio.digest()] = int(s)
        return out

    def lock(self, audio, ref_text, language="en", *, name, description="", seed=None):
        self.lock_calls += 1
        return super().lock(audio, ref_text, language, name=name, description=description, seed=seed)

    def speaker_embedding(self, audio: Audio):
        if self.vectors is None:
            return super().speaker_embedding(audio)
        seed = self.seed_of.get(audio.digest())
        if seed is None:
            return None
        return np.asarray(self.vectors(seed) if callable(self.vectors) else self.vectors[seed], dtype=np.float32)

    def release_design(self) -> None:
        self.released = True
