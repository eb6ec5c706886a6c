"""Reading a Prefect state's result the same way wherever it is read.

`State.result()` dispatches on its caller's context: inside an asyncio event loop (or an async flow or task) it
returns a coroutine instead of the result, so `state.result(raise_on_failure=False)` would hand back a coroutine
that is neither the result nor an exception. Prefect 3 takes `_sync=True` to always run the synchronous path
(`prefect._internal.compatibility.async_dispatch`); every state we read goes through `state_result`.
"""

from __future__ import annotations

from typing import Any


def state_result(state, raise_on_failure: bool = True) -> Any:
    """The state's result (or, with `raise_on_failure=False`, its exception), never a coroutine."""
    return state.result(raise_on_failure=raise_on_failure, _sync=True)
