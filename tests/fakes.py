"""A queue-driven fake engine for orchestration tests (in the spirit of simonw/llm's MockModel).

- Audio comes from the deterministic instant engine, so outputs are real, mixable files.
- `enqueue(outcome, ...)` scripts what the next rendered lines return, in order: `"ok"`, an error string
  (a failed outcome with that reason), or an Exception instance (raised from `render`).
- `fail_key(key, reason)` / `fail_text(substring, reason)` make matching lines fail every time until
  `clear_failures()`; `raise_key(key, exc)` makes the whole render call raise when a batch contains the key.
- Every call is counted: `render_calls` (one entry per `render` call: the keys it was asked for), `rendered_keys`
  (all keys asked for, in order), `design_calls`, `lock_calls`.

Register it with `install_fake_engine()`, which registers the factory under the name "fake" and returns the shared
instance the factory hands out (the flows cache engines per process, so tests must see the same object).
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

from pipeline.engines import register_engine
from pipeline.engines.base import RenderJob, RenderOutcome
from pipeline.engines.instant import InstantEngine


class FakeEngine(InstantEngine):
    name = "fake"

    def __init__(self, settings=None, models_dir=None):
        super().__init__(settings, models_dir)
        self.queue: deque = deque()
        self.failing_keys: dict[str, str] = {}
        self.failing_texts: dict[str, str] = {}
        self.raising_keys: dict[str, Exception] = {}
        self.reset_counts()

    # --- scripting -------------------------------------------------------------------------------------------
    def enqueue(self, *outcomes) -> "FakeEngine":
        self.queue.extend(outcomes)
        return self

    def fail_key(self, key: str, reason: str = "injected failure") -> "FakeEngine":
        self.failing_keys[key] = reason
        return self

    def fail_text(self, substring: str, reason: str = "injected failure") -> "FakeEngine":
        self.failing_texts[substring] = reason
        return self

    def raise_key(self, key: str, exc: Exception | None = None) -> "FakeEngine":
        self.raising_keys[key] = exc or RuntimeError("injected engine crash")
        return self

    def clear_failures(self) -> "FakeEngine":
        self.queue.clear()
        self.failing_keys.clear()
        self.failing_texts.clear()
        self.raising_keys.clear()
        return self

    def reset_counts(self) -> "FakeEngine":
        self.render_calls: list[list[str]] = []
        self.rendered_keys: list[str] = []
        self.rendered_texts: list[str] = []  # what the engine was asked to say (after the lexicon)
        self.design_calls = 0
        self.lock_calls = 0
        return self

    @property
    def engine_calls(self) -> int:
        """Every model call: design, lock and render."""
        return len(self.render_calls) + self.design_calls + self.lock_calls

    # --- Engine protocol -------------------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"engine": self.name, "model_id": "fake-1"}

    def design(self, description, text, seeds, language="en"):
        self.design_calls += 1
        return super().design(description, text, seeds, language)

    def lock(self, audio, ref_text, language="en", *, name, description="", seed=None):
        self.lock_calls += 1
        lock = super().lock(audio, ref_text, language, name=name, description=description, seed=seed)
        return lock

    def render(self, lock, jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
        keys = [j.key for j in jobs]
        self.render_calls.append(keys)
        self.rendered_keys.extend(keys)
        self.rendered_texts.extend(j.text for j in jobs)
        for k in keys:
            if k in self.raising_keys:
                raise self.raising_keys[k]
        good = super().render(lock, jobs)
        out = []
        for job, outcome in zip(jobs, good):
            scripted = self.queue.popleft() if self.queue else "ok"
            if isinstance(scripted, Exception):
                raise scripted
            reason = self.failing_keys.get(job.key) or next(
                (r for s, r in self.failing_texts.items() if s in job.text), None)
            if scripted != "ok":
                reason = str(scripted)
            out.append(RenderOutcome(job.key, None, error=reason, seed=job.seed) if reason else outcome)
        return out


_INSTANCE: FakeEngine | None = None


def install_fake_engine(fresh: bool = True) -> FakeEngine:
    """Register the "fake" engine; every create_engine("fake", …) returns the same instance (returned here)."""
    global _INSTANCE
    if fresh or _INSTANCE is None:
        _INSTANCE = FakeEngine()
    register_engine("fake", lambda settings, models_dir: _INSTANCE, summary="queue-driven fake (tests)",
                    lock_kinds=("instant",))
    return _INSTANCE
