"""Ctrl-C as a person expects it: the first stops starting new work, the second quits at once.

The CLI installs `on_sigint(...)` around a flow. The first SIGINT only sets a flag; flows call `checkpoint()`
between units of work (characters while casting, lines and scenes while rendering), which raises
`RenderInterrupted` once the flag is set — the line in flight finishes (or its batch is abandoned, nothing of it
stored), finished lines stay in the line store, the render flow writes its report with status "interrupted", and
the command exits 130 saying to run it again to resume. A second SIGINT runs the `hard_exit` callback (stop the
server we own) and leaves with `os._exit(130)`.
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


@contextlib.contextmanager
def on_sigint(notice: Callable[[], None] | None = None,
              hard_exit: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block: first SIGINT → `request()` and `notice()`; second → `hard_exit()` and exit 130 at once.
    Only the main thread can install signal handlers; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()

    def handler(signum, frame) -> None:
        if not _REQUESTED.is_set():
            request()
            if notice is not None:
                with contextlib.suppress(Exception):
                    notice()
            return
        with contextlib.suppress(Exception):
            if hard_exit is not None:
                hard_exit()
        with contextlib.suppress(Exception):
            sys.stderr.write("\nStopped at once. Run the same command again to resume.\n")
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
