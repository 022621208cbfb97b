"""Waiting on the database from async spend tests."""
from __future__ import annotations

import asyncio

from django.db import connections


async def until(check, timeout: float = 10.0):
    """Call ``check`` (blocking: on a thread) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(closing(check))
        if value:
            return value
        assert loop.time() < deadline, f"condition not met within {timeout}s (last value: {value!r})"
        await asyncio.sleep(0.02)


def closing(function):
    """``function`` run on a worker thread, that thread's database connection closed afterwards (the test
    database is dropped at the end of the session)."""
    def run():
        try:
            return function()
        finally:
            connections.close_all()
    return run
