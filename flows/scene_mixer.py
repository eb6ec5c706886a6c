"""Scene mixes beside the engine: each scene whose lines are all stored is mixed on one background thread while the
engine goes on rendering the next lines (`render.mix_while_rendering`), so mixing costs CPU time, not wall time.

One thread, so one scene mix at a time: memory stays one mix above the engine's. Mixes run in the order scenes were
handed over, each in a copy of the context the mixer was made in: Prefect's flow run context travels with it, so a
mix task is a task of the same flow run, but never a child of the render task that was running when its scene was
handed over (that task's transaction would hold back the mix's cached result until its own end). `render.mix_while_rendering = false` mixes on the caller's thread instead, between two
engine calls, as before.
"""

from __future__ import annotations

import contextvars
import functools
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


class SceneMixer:
    """Hands scene indices to `mix` (which never raises) in order, on one background thread or in line.
    `waited`: seconds the caller spent on mixes, running them in line or waiting for the thread (`finish`)."""

    def __init__(self, mix: Callable[[int], None], background: bool = True):
        self._mix = mix
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scene-mix") if background else None
        self.background = background
        self._context = contextvars.copy_context()  # the flow's, outside any task
        self._futures: list[Future] = []
        self.waited = 0.0

    def __enter__(self) -> "SceneMixer":
        return self

    def __exit__(self, *exc) -> None:
        """On an error or a Ctrl-C in the caller: mixes not started are dropped, the one running finishes (its
        files are written whole or not at all, and nothing is left half-done on a thread nobody waits for)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, index: int) -> None:
        if self._pool is None:
            started = time.perf_counter()
            self._mix(index)
            self.waited += time.perf_counter() - started
        else:
            self._futures.append(self._pool.submit(self._context.copy().run, self._mix_and_trim, index))

    def finish(self) -> None:
        """Wait for every mix handed over so far."""
        started = time.perf_counter()
        for future in self._futures:
            future.result()
        self._futures.clear()
        self.waited += time.perf_counter() - started

    def _mix_and_trim(self, index: int) -> None:
        try:
            self._mix(index)
        finally:
            release_freed_memory()


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; nothing elsewhere). glibc keeps what a
    thread frees in that thread's own arena, so without this the mixing thread holds on to its last mix's buffers
    while the engine thread grows its own: measured on yntswyd, peak RSS 391 → 384 MiB. About a millisecond."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own symbols: libc's, where glibc
    except OSError:
        return None
