"""Proxied calls still running when the server gives up waiting at shutdown (``GATEWAY_GRACEFUL_TIMEOUT``).

Uvicorn then cancels the tasks it started, but Django runs a view, and relays a streamed response, in a
task of its own that this cancellation does not reach: left alone, it would be cancelled only after the
spend buffer was flushed, and its spend row lost. The pipeline and the stream relays register their
task here, and the lifespan shutdown cancels and awaits them first, so each records the failed (or
partial, with the tokens streamed so far) call before the buffer is flushed.

A call's closing bookkeeping (upstream response closed, in-flight entry closed, spend recorded, budget
reservation settled) must not be cut short by a cancellation either: a client that hangs up the moment it
has read ``data: [DONE]`` cancels the relay while it is doing exactly that, which would lose the spend row
or leave the reservation counted against the budget forever. ``to_the_end`` runs it as a task of its own
that the caller's cancellation does not reach; the lifespan shutdown waits for these too.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_running: set[asyncio.Task] = set()
_closing: set[asyncio.Task] = set()


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
    return await _unfinished_after(pending, timeout)


async def to_the_end(step: Coroutine[Any, Any, None]) -> None:
    """Await ``step``, which runs to its end even if the caller is cancelled meanwhile (the cancellation
    still reaches the caller, at once)."""
    task = asyncio.get_running_loop().create_task(step)
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    await asyncio.shield(task)


async def wait_closing(timeout: float) -> int:
    """Wait (at most ``timeout`` s) for the bookkeeping started by ``to_the_end``; return how many were
    still running afterwards."""
    return await _unfinished_after({task for task in _closing if not task.done()}, timeout)


async def _unfinished_after(pending: set[asyncio.Task], timeout: float) -> int:
    if not pending:
        return 0
    _, still = await asyncio.wait(pending, timeout=timeout)
    return len(still)
