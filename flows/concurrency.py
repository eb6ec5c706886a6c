"""MLX serialisation for flows: one model user per process, one per GPU across a Prefect server.

- In-process: a re-entrant lock, so two flows in one Python process never drive MLX at once (MLX streams are
  thread-local; see ../shared/notes/prefect.md).
- Across processes and machines: the global concurrency limit `deploy.concurrency_limit` ("mlx", created by
  `readthrough deploy` with `deploy.mlx_slots` slots), acquired with `strict=True` — Prefect's default silently
  skips a limit that does not exist, which would let a CI run and a nightly render share a GPU.
- Only when the run talks to a shared server (a configured PREFECT_API_URL); ephemeral runs and the private
  server a command starts for itself (flows.server) have no other users.
- Only for engines that load MLX models (qwen3); preview/instant runs never wait for the GPU.

Flows call `mlx_guard(spec)` once at the start (the apple-silicon deployments refuse real models on a machine
without Metal, see pipeline.engines.guard) and wrap their engine work in `with mlx_slot(spec): ...`. A farm parent
holds the slot only while it casts — never while it waits for its shards, which need the slot themselves.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from pipeline.engines import model_weight_engines
from pipeline.engines.guard import guard_from_env
from pipeline.errors import EngineError

_LOCAL = threading.RLock()
LEASE_SECONDS = 60.0


def uses_mlx(engine: str) -> bool:
    return (engine or "").strip().lower() in model_weight_engines()


def api_url() -> str | None:
    """The Prefect server this process reports to, or None in ephemeral mode."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def shared_server() -> bool:
    """True when this run reports to a server others may use too (a configured PREFECT_API_URL); False in
    ephemeral mode and on the private server a readthrough command starts for itself (flows.server), which no
    other process talks to and which has no `mlx` limit."""
    import os

    from flows.server import PRIVATE_API_ENV

    url = api_url()
    return url is not None and url != os.environ.get(PRIVATE_API_ENV)


def mlx_guard(spec) -> str | None:
    """Refuse the real-model engine without Metal when running under an apple-silicon deployment (see guard)."""
    return guard_from_env(spec.engine, spec.settings, spec.models_dir)


@contextmanager
def mlx_slot(spec, *, timeout_s: float | None = None) -> Iterator[None]:
    """Hold this process's MLX lock and, against a server, one slot of the global `mlx` limit (strict)."""
    if not uses_mlx(spec.engine):
        yield
        return
    with _LOCAL:
        if not shared_server():
            yield
            return
        from prefect.concurrency.sync import concurrency

        name = spec.settings.deploy.concurrency_limit
        try:
            # strict: a missing limit is an error, not a silent no-op; a transient lease-renewal failure
            # must not kill an hours-long render (the lease is renewed in the background).
            # A short lease (renewed in the background while we live): a render killed with SIGKILL or by the OOM
            # killer frees its GPU slot within a minute instead of Prefect's default five.
            cm = concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True, lease_duration=LEASE_SECONDS,
                             raise_on_lease_renewal_failure=False)
            cm.__enter__()
        except Exception as e:
            if type(e).__name__ == "ConcurrencySlotAcquisitionError":
                raise EngineError(
                    f"The global concurrency limit {name!r} (deploy.concurrency_limit) could not be acquired on "
                    f"{api_url()}: {e}. Fix: run `readthrough deploy` against this server (it creates the limit), "
                    f"or unset PREFECT_API_URL to render without a server."
                ) from None
            raise
        _log(f"holding one slot of global concurrency limit {name!r} for {spec.engine} work")
        try:
            yield
        except BaseException as e:
            if not cm.__exit__(type(e), e, e.__traceback__):
                raise
        else:
            cm.__exit__(None, None, None)


def _log(message: str) -> None:
    """To the run's logger (visible in the UI) when inside a run; silent otherwise."""
    try:
        from prefect import get_run_logger

        get_run_logger().info(message)
    except Exception:  # no active run context
        pass
