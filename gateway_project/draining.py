"""Proxied calls still running when the server gives up waiting at shutdown (``GATEWAY_GRACEFUL_TIMEOUT``).

Uvicorn then cancels the tasks it started, but Django runs a view, and relays a streamed response, in a
task of its own that this cancellation does not reach: left alone, it would be cancelled only after the
spend buffer was flushed, and its spend row lost. The pipeline and the stream relays register their
task here, and the lifespan shutdown cancels and awaits them first, so each records the failed (or
partial, with the tokens streamed so far) call before the buffer is flushed.
"""
from __future__ import annotations

import asyncio

_running: set[asyncio.Task] = set()


def track() -> asyncio.Task | None:
    task = asyncio.current_task()
    if task is not None:
        _running.add(task)
    return task


def untrack(task: asyncio.Task | None) -> None:
    _running.discard(task)


async def cancel_running(timeout: float) -> int:
    """Cancel the calls still running and wait (at most ``timeout`` s) for them to unwind; return how
    many were still running afterwards."""
    pending = {task for task in _running if not task.done()}
    for task in pending:
        task.cancel("the gateway is shutting down")
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        return len(still)
    return 0
