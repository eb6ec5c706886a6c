"""Render sessions: one engine session renders a whole run's lines, keeping `batch_size` rows busy.

A session takes rows — (voice lock, job) pairs of any voices — and hands back one outcome per row through a
callback as soon as that row is finished, so callers store each line at once and never hold a run's audio.

Engines with a step-wise batch (qwen3: `pipeline.engines.qwen3_session`) implement `session(batch_size)`. Every
other engine gets `PerVoiceSession`: rows grouped by voice, `engine.render(lock, batch)` per group of
`batch_size` (preview and instant render the rows of a call one by one). For those a "step" is one engine call.

Stopping early: `run(rows, on_outcome, should_stop)` asks `should_stop()` before each step (a decode step, or an
engine call) and returns as soon as it says True. Rows already handed out stay handed out (callers store each one
as it finishes); rows in flight are dropped, nothing of them handed out; rows not started never start. The caller
(a Ctrl-C in the CLI, through `flows.interrupt`) decides what stopping means; nothing here knows about signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from ..lock import VoiceLock
from .base import RenderJob, RenderOutcome

OnOutcome = Callable[[RenderOutcome], None]
ShouldStop = Callable[[], bool]


def never() -> bool:
    """The default `should_stop`: run every row."""
    return False


@dataclass(frozen=True)
class SessionRow:
    """One line for a session: the voice to speak it in and the job."""

    lock: VoiceLock
    job: RenderJob


@dataclass
class SessionStats:
    """Batching figures of a session (or of a run, summed over its sessions).

    steps: batched decode steps (an engine call for engines without a step-wise batch); busy_rows: the sum over
    steps of rows producing a line's token at that step; capacity: the sum over steps of rows computed (idle rows
    of a static batch included) or `batch_size` when a step ran with empty rows."""

    batch_size: int = 1
    steps: int = 0
    lines: int = 0
    busy_rows: int = 0
    capacity: int = 0
    prefills: int = 0
    tokens: int = 0

    @property
    def mean_busy_rows(self) -> float:
        return self.busy_rows / self.steps if self.steps else 0.0

    @property
    def padding_waste(self) -> float:
        """Share of the batch's row-steps that produced nothing (finished rows kept in a static batch, empty
        slots)."""
        return 1.0 - self.busy_rows / self.capacity if self.capacity else 0.0

    def add(self, other: "SessionStats") -> "SessionStats":
        self.batch_size = max(self.batch_size, other.batch_size)
        for name in ("steps", "lines", "busy_rows", "capacity", "prefills", "tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def to_json(self) -> dict:
        return {"batch_size": self.batch_size, "steps": self.steps, "lines": self.lines,
                "mean_busy_rows": round(self.mean_busy_rows, 3), "padding_waste": round(self.padding_waste, 4),
                "prefills": self.prefills, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "SessionStats":
        steps = int(data.get("steps", 0))
        busy = int(round(float(data.get("mean_busy_rows", 0.0)) * steps))
        size = int(data.get("batch_size", 1))
        waste = float(data.get("padding_waste", 0.0))
        capacity = int(round(busy / (1.0 - waste))) if waste < 1.0 else size * steps
        return cls(batch_size=size, steps=steps, lines=int(data.get("lines", 0)), busy_rows=busy,
                   capacity=capacity, prefills=int(data.get("prefills", 0)), tokens=int(data.get("tokens", 0)))


class RenderSession(Protocol):
    stats: SessionStats

    def run(self, rows: Sequence[SessionRow], on_outcome: OnOutcome, should_stop: ShouldStop = never) -> None:
        """Render every row; call `on_outcome` once per row (any order) as it finishes. Never raises for one
        line: an engine error becomes that row's failed outcome. Returns early, leaving rows without an
        outcome, once `should_stop()` is True (checked before each step)."""


def open_session(engine, batch_size: int) -> RenderSession:
    """The engine's own step-wise session where it has one, else a per-voice batching session over `render`."""
    make = getattr(engine, "session", None)
    if callable(make):
        return make(batch_size)
    return PerVoiceSession(engine, batch_size)


class PerVoiceSession:
    """Rows grouped by voice, `engine.render(lock, batch)` per `batch_size` rows of one voice. If a call raises,
    its rows are retried one by one so the error names only the line(s) that cause it."""

    def __init__(self, engine, batch_size: int):
        self.engine = engine
        self.batch_size = max(1, int(batch_size))
        self.stats = SessionStats(batch_size=self.batch_size)

    def run(self, rows: Sequence[SessionRow], on_outcome: OnOutcome, should_stop: ShouldStop = never) -> None:
        for batch in self._batches(rows):
            if should_stop():
                return
            for outcome in self._render(batch[0].lock, [r.job for r in batch], should_stop):
                self.stats.lines += 1
                self.stats.tokens += outcome.tokens
                on_outcome(outcome)

    def _batches(self, rows: Sequence[SessionRow]) -> list[list[SessionRow]]:
        """Up to `batch_size` rows of one voice each, in the order of their first rows: the rows' scenes (in
        script order) complete one after another through the session, so each can be mixed while the rest render."""
        by_voice: dict[int, list[tuple[int, SessionRow]]] = {}
        for n, row in enumerate(rows):  # callers hand every row of one voice the same lock object
            by_voice.setdefault(id(row.lock), []).append((n, row))
        batches = [group[start:start + self.batch_size] for group in by_voice.values()
                   for start in range(0, len(group), self.batch_size)]
        return [[row for _, row in batch] for batch in sorted(batches, key=lambda batch: batch[0][0])]

    def _call(self, lock: VoiceLock, jobs: list[RenderJob]) -> list[RenderOutcome]:
        self.stats.steps += 1
        self.stats.busy_rows += len(jobs)
        self.stats.capacity += self.batch_size
        outcomes = {o.key: o for o in self.engine.render(lock, jobs)}
        return [outcomes.get(j.key) or RenderOutcome(j.key, None, "engine returned no outcome for this line",
                                                     seed=j.seed) for j in jobs]

    def _render(self, lock: VoiceLock, jobs: list[RenderJob], should_stop: ShouldStop) -> list[RenderOutcome]:
        try:
            return self._call(lock, jobs)
        except Exception as e:  # noqa: BLE001 — an engine failure must not stop other lines
            if len(jobs) == 1:
                return [_crashed(jobs[0], e)]
        out = []
        for job in jobs:
            if should_stop():
                break
            try:
                out.extend(self._call(lock, [job]))
            except Exception as e:  # noqa: BLE001
                out.append(_crashed(job, e))
        return out


def _crashed(job: RenderJob, e: BaseException) -> RenderOutcome:
    return RenderOutcome(job.key, None, f"engine error: {type(e).__name__}: {e}", seed=job.seed)
