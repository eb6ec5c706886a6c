"""Ctrl-C as a person expects it: the first stops starting new work, the second quits at once.

The CLI installs `on_sigint(...)` before it starts Prefect and keeps it until the flow's report is read, so no
first Ctrl-C ever meets Python's default KeyboardInterrupt. The first SIGINT only sets a flag. Flows call
`checkpoint()` between units of work (characters while casting), which raises `RenderInterrupted` once the flag is
set; the render task hands `requested` to the engine session as its `should_stop`, which the session asks before
each step (a decode step of the qwen3 batch, an engine call of the others): lines finished so far are in the line
store, the batch in flight is dropped (nothing of it stored), no new line or scene mix starts; the render flow writes
its report with status "interrupted", and the command exits 130 saying to run it again to resume. A second SIGINT
runs the hard-exit callbacks (stop the server we own) and leaves with `os._exit(130)`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from pipeline.errors import ReadthroughError

EXIT_INTERRUPTED = 130
_REQUESTED = threading.Event()


class RenderInterrupted(ReadthroughError):
    """The user pressed Ctrl-C: work stopped between two units; what is done is kept."""

    exit_code = EXIT_INTERRUPTED


def requested() -> bool:
    return _REQUESTED.is_set()


def request() -> None:
    _REQUESTED.set()


def reset() -> None:
    _REQUESTED.clear()


def checkpoint(where: str = "") -> None:
    """Raise RenderInterrupted when an interrupt was requested (call it between units of work)."""
    if _REQUESTED.is_set():
        raise RenderInterrupted(f"interrupted{f' {where}' if where else ''}")


class HardExit:
    """What a second Ctrl-C runs before it quits (callbacks added as things start, e.g. our Prefect server)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None] | None) -> None:
        if callback is not None:
            self.callbacks.append(callback)

    def run(self) -> None:
        for callback in self.callbacks:
            with contextlib.suppress(Exception):
                callback()


@contextlib.contextmanager
def on_sigint(notice: Callable[[], None] | None = None,
              hard_exit: Callable[[], None] | None = None) -> Iterator[HardExit]:
    """Within the block: first SIGINT → `request()` and `notice()`; second → the hard-exit callbacks (`hard_exit`
    and those added to the yielded HardExit) and exit 130 at once. Only the main thread can install signal
    handlers; elsewhere the block runs unchanged."""
    exits = HardExit()
    exits.add(hard_exit)
    if threading.current_thread() is not threading.main_thread():
        yield exits
        return
    reset()

    def handler(signum, frame) -> None:
        if not _REQUESTED.is_set():
            request()
            if notice is not None:
                with contextlib.suppress(Exception):
                    notice()
            return
        exits.run()
        with contextlib.suppress(Exception):
            sys.stderr.write("\nStopped at once. Run the same command again to resume.\n")
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield exits
    finally:
        signal.signal(signal.SIGINT, previous)
