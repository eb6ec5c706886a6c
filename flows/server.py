"""The Prefect API server a command runs its flows against, owned by us and dying with us.

Prefect's own ephemeral mode starts a server child in *our* process group: a Ctrl-C in the terminal kills that
child at once, and the flow then spends minutes logging "Error logging to API" / `httpx.ConnectError` before it
gives up; a `kill` of only the main process (as the OOM killer does) leaves the child running. So a command that
needs Prefect and has no server configured starts its own (`TemporaryServer`):

- in its own session (`start_new_session`), so a terminal Ctrl-C reaches only the command, which then stops the
  server itself after writing its report;
- watching its parent: Linux's parent-death signal (`PR_SET_PDEATHSIG`) plus a thread that polls the parent pid
  (every platform), so it exits when the command dies however it dies;
- logging to `$READTHROUGH_HOME/logs/prefect-server.log` instead of the console;
- skipping the database migration check when the same Prefect version already migrated the same SQLite file
  (a marker beside it); block types are already memoised by Prefect.

`python -m flows.server --port P --parent PID` is the server process itself. Nothing here imports Prefect in the
calling process. `PREFECT_API_URL` set (or a Prefect test harness active) means a server is configured: we use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.errors import ReadthroughError

START_TIMEOUT_S = 120.0


class ServerError(ReadthroughError):
    """Our Prefect server did not come up; the message names its log."""

MARKER = "readthrough-migrated.txt"


def configured_api_url() -> str | None:
    """The API URL the user or a test harness configured; None means Prefect would start an ephemeral server."""
    if "prefect.settings" in sys.modules:  # a harness or earlier code may have set it in Prefect's settings context
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
        if url:
            return str(url)
    return os.environ.get("PREFECT_API_URL") or None


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def _default_sqlite() -> Path | None:
    """The SQLite file Prefect uses when nothing else is configured; None when another database is configured."""
    if os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        return None
    return prefect_home() / "prefect.db"


def _migrated(db: Path | None) -> bool:
    if db is None or not db.is_file() or db.stat().st_size == 0:
        return False
    marker = db.parent / MARKER
    try:
        return marker.read_text().strip() == f"{_prefect_version()} {db.stat().st_ino}"
    except OSError:
        return False


def _mark_migrated(db: Path | None) -> None:
    if db is None or not db.is_file():
        return
    with contextlib.suppress(OSError):
        (db.parent / MARKER).write_text(f"{_prefect_version()} {db.stat().st_ino}\n")


class TemporaryServer:
    """A Prefect API server for this process's lifetime (see module doc). Use as a context manager."""

    def __init__(self, home: Path, timeout: float = START_TIMEOUT_S):
        self.home = Path(home)
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.db = _default_sqlite()
        self.log_path = self.home / "logs" / "prefect-server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> "TemporaryServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
               "PREFECT_LOGGING_SERVER_LEVEL": "WARNING"}
        env.pop("PREFECT_API_URL", None)
        self._skip_migration = _migrated(self.db)
        if self._skip_migration:
            env["PREFECT_API_DATABASE_MIGRATE_ON_START"] = "false"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flows.server", "--port", str(self.port), "--parent", str(os.getpid())],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"The Prefect server exited with code {self.proc.returncode} before it was ready; "
                                  f"its log is {self.log_path}. Set PREFECT_API_URL to use a server of your own.")
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        if not self._skip_migration:
                            _mark_migrated(self.db)
                        return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"The Prefect server did not answer within {self.timeout:.0f} s; its log is "
                          f"{self.log_path}. Set PREFECT_API_URL to use a server of your own.")

    def stop(self, wait: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    def kill_now(self) -> None:
        """For a second Ctrl-C: no waiting (the server also notices our death by itself)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def __enter__(self) -> "TemporaryServer":
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


PRIVATE_API_ENV = "READTHROUGH_PRIVATE_API_URL"  # set while a server of our own (one run's alone) is in use


@contextlib.contextmanager
def prefect_api(home: Path):
    """Point Prefect at a server for the block: the configured one, else a TemporaryServer we own.

    Must be entered before Prefect is imported (its settings read PREFECT_API_URL once). Yields the
    TemporaryServer or None. Prefect is imported while the server boots (the two overlap)."""
    if configured_api_url():
        yield None
        return
    server = TemporaryServer(home).start()
    try:
        with contextlib.ExitStack() as stack:
            if "prefect.settings" in sys.modules:  # imported already (tests, embedding): settings are read
                from prefect.settings import PREFECT_API_URL, temporary_settings

                stack.enter_context(temporary_settings({PREFECT_API_URL: server.api_url}))
            os.environ["PREFECT_API_URL"] = server.api_url
            os.environ[PRIVATE_API_ENV] = server.api_url  # ours alone: no global limits to honour
            import prefect  # noqa: F401 — imports while the server boots

            server.wait_ready()
            try:
                yield server
            finally:
                drain_prefect()
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop(PRIVATE_API_ENV, None)
        server.stop()


def drain_prefect(timeout: float = 5.0) -> None:
    """Send the logs and events Prefect still queues to the server while it is up (else they are retried against
    a stopped server at exit: "Error logging to API", minutes of waiting)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout)


# ------------------------------------------------------------------------------------------------ the server


def _die_with_parent(parent: int, on_exit) -> None:
    """Exit when `parent` dies: PR_SET_PDEATHSIG on Linux, and a polling thread everywhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                on_exit()
                time.sleep(5)
                os._exit(0)
            time.sleep(0.5)

    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(port: int, parent: int) -> None:
    import uvicorn

    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port,
                            log_level="error", lifespan="on")
    server = uvicorn.Server(config)

    def request_exit() -> None:
        server.should_exit = True

    _die_with_parent(parent, request_exit)
    server.run()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.server", description="readthrough's Prefect API server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True, help="exit when this process is gone")
    args = parser.parse_args(argv)
    serve(args.port, args.parent)


if __name__ == "__main__":
    main()
