"""Per-process caches of frozen snapshots for the proxy's hot path.

A hit costs a dict lookup and a clock read: no database query. A miss loads through one database
read, coalesced so that a burst of requests for the same uncached key makes one query. Writes
invalidate entries (``invalidate``) when their transaction commits; ``ttl`` bounds how stale an entry
written by another process can be.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class SnapshotCache(Generic[V]):
    def __init__(self, name: str, loader: Callable[[str], Awaitable[V | None]], *, ttl: Callable[[], float],
                 negative_ttl: float = 1.0, max_entries: int = 100_000) -> None:
        self.name = name
        self._loader = loader
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, V | None]] = {}
        self._loading: dict[str, asyncio.Future] = {}
        # Bumped on every invalidation, so a load that raced a write does not cache the old row.
        self._generation = 0

    async def get(self, key: str) -> V | None:
        entry = self._entries.get(key, _MISSING)
        if entry is not _MISSING and entry[0] > time.monotonic():  # type: ignore[index]
            return entry[1]  # type: ignore[index]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            value = await self._loader(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters get it, nobody else is warned
            raise
        finally:
            self._loading.pop(key, None)
        if generation == self._generation:
            self._store(key, value)
        future.set_result(value)
        return value

    def _store(self, key: str, value: V | None) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        ttl = self._ttl() if value is not None else min(self._negative_ttl, self._ttl())
        self._entries[key] = (time.monotonic() + ttl, value)

    def invalidate(self, key: str) -> None:
        self._generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
