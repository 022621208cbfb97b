"""Per-process caches of frozen snapshots for the proxy's hot path.

A hit costs a dict lookup and a clock read: no database query. A miss loads through one database
read, coalesced so that a burst of requests for the same uncached key makes one query. Writes
invalidate entries (``invalidate``) when their transaction commits; ``ttl`` bounds how stale an entry
written by another process can be. An entry that expired less than one more ``ttl`` ago is served as it is
while one read in the background replaces it, so a key in steady use is never read on a request's path
(without it, one request per key and per ``ttl`` waited for the database: at concurrency 1 more than one in
a hundred, docs/performance.md "Snapshots read behind the requests"); an entry expired longer ago, a
negative one ("no such key") and an invalidated one are read before answering. While the database cannot be
reached (down, restarting, failing over), an expired entry goes on being served, so known keys keep working
through an outage; a miss then raises the database error, which the API renders as a 503.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

V = TypeVar("V")

logger = logging.getLogger("gateway.cache")

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
        self._refreshing: set[asyncio.Task] = set()   # reads behind the requests, held until they end
        # Bumped on every invalidation, so a load that raced a write does not cache the old row.
        self._generation = 0

    async def get(self, key: str) -> V | None:
        if "\x00" in key:
            return None  # client-supplied; no stored id can hold a NUL byte (PostgreSQL refuses them)
        entry = self._entries.get(key, _MISSING)
        if entry is not _MISSING:
            expires, value = entry  # type: ignore[misc]
            now = time.monotonic()
            if expires > now:
                return value
            if value is not None and now < expires + self._ttl():   # recently expired: read behind, serve it
                if key not in self._loading:
                    future = self._reading(key)
                    task = asyncio.get_running_loop().create_task(self._load(key, entry, future))
                    self._refreshing.add(task)
                    task.add_done_callback(functools.partial(self._refreshed, key, future, value))
                return value
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, entry, self._reading(key))

    def _reading(self, key: str) -> asyncio.Future:
        """Say that ``key`` is being read: callers arriving meanwhile wait for the read's future."""
        future = self._loading[key] = asyncio.get_running_loop().create_future()
        return future

    async def _load(self, key: str, entry, future: asyncio.Future) -> V | None:
        """Read ``key`` once and store what it found, unless it was invalidated meanwhile."""
        generation = self._generation
        try:
            try:
                value = await self._loader(key)
            except (OperationalError, InterfaceError) as exc:
                stale = self._stale(key, entry, generation, exc)
                if stale is _MISSING:
                    raise
                future.set_result(stale)
                return stale
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

    def _refreshed(self, key: str, future: asyncio.Future, served: V, task: asyncio.Task) -> None:
        self._refreshing.discard(task)
        if not future.done():   # cancelled before it ran (the loop closing): callers waiting on it get the entry
            if self._loading.get(key) is future:
                del self._loading[key]
            future.set_result(served)
        elif not task.cancelled() and task.exception() is not None:   # the next request reads it again
            logger.error("reading a %s snapshot behind the requests failed", self.name, exc_info=task.exception())

    def _stale(self, key: str, entry, generation: int, exc: Exception):
        """The database cannot be reached: the expired snapshot of ``key``, kept for another TTL (so the
        database is tried again once per TTL, not on every request), or _MISSING when there is none to
        serve (never loaded, known not to exist, or changed since)."""
        if entry is _MISSING or entry[1] is None or generation != self._generation:
            return _MISSING
        self._store(key, entry[1])
        logger.warning("database unreachable (%s): serving the last known %s %s", type(exc).__name__, self.name,
                       key[:12])
        return entry[1]

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


def snapshot_loader(read: Callable[[str], V | None]) -> Callable[[str], Awaitable[V | None]]:
    """A cache's database read, run off the event loop (thread-sensitive ``sync_to_async``).

    The proxy's hot path is served outside Django's request cycle (``proxy/hotpath.py``), so its reads
    share one long-lived thread and connection, and no ``request_started`` signal tidies that connection:
    the read does what the signal's ``close_old_connections`` would, first (drop a connection past
    ``CONN_MAX_AGE`` or broken by an error), and a reused connection that the database dropped while it was
    idle (a restart, an idle timeout) is replaced and the read made once more. Inside a transaction (a
    test's) the connection is left alone.
    """

    @functools.wraps(read)
    def fresh_read(key: str) -> V | None:
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.in_atomic_block:
            return read(key)
        connection.close_if_unusable_or_obsolete()
        reused = connection.connection is not None
        try:
            return read(key)
        except (OperationalError, InterfaceError):
            if not reused:
                raise
            connection.close()
            return read(key)

    return sync_to_async(fresh_read, thread_sensitive=True)


# --- Invalidation across processes --------------------------------------------------------------------

_caches: dict[str, SnapshotCache] = {}


def register(cache: SnapshotCache) -> SnapshotCache:
    _caches[cache.name] = cache
    return cache


class InvalidationBus:
    """With Redis, every write is announced on one channel and every process drops its copy at once;
    without Redis, only the writing process learns of it (others wait out the TTL).

    ``publish`` is called from whatever thread committed the write (sync); ``listen`` runs as a task
    on each server process's event loop.
    """

    def __init__(self, redis_url: str | None, prefix: str = "gateway:") -> None:
        self._url = redis_url
        self.channel = f"{prefix}invalidate"
        self._client = None

    def publish(self, name: str, key: str) -> None:
        if not self._url:
            return
        try:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(self._url, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._client.publish(self.channel, f"{name}\x1f{key}")
        except Exception as exc:  # any Redis failure: other processes fall back to the TTL
            logger.warning("cache invalidation of %s %s not broadcast (%s); other processes see it "
                           "within the cache TTL", name, key[:12], type(exc).__name__)

    async def listen(self) -> None:
        """Apply every announced invalidation here; reconnect (dropping everything cached) on trouble."""
        import redis.asyncio

        delay = 0.5
        while True:
            try:
                client = redis.asyncio.Redis.from_url(self._url, health_check_interval=15)
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    for cache in _caches.values():  # anything missed while disconnected is gone
                        cache.clear()
                    delay = 0.5
                    async for message in pubsub.listen():
                        self._apply(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cache invalidation channel lost (%s); reconnecting in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _apply(self, message) -> None:
        if message.get("type") != "message":
            return
        data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
        name, _, key = data.partition("\x1f")
        cache = _caches.get(name)
        if cache is not None:
            cache.invalidate(key)


def invalidate_everywhere(cache: SnapshotCache, key: str) -> None:
    """Drop ``key`` here and announce it to every other process (call after the write commits)."""
    cache.invalidate(key)
    bus().publish(cache.name, key)


_bus: InvalidationBus | None = None


def bus() -> InvalidationBus:
    global _bus
    if _bus is None:
        from django.conf import settings

        _bus = InvalidationBus(settings.REDIS_URL, settings.GATEWAY_REDIS_PREFIX)
    return _bus


class Derived(Generic[V]):
    """Values derived from snapshots (or from values derived from them), kept by the identity of their
    sources: a snapshot never changes, and a changed row is a new snapshot, so an entry holds for as long as
    its sources are the very same objects. An entry keeps its sources alive, so the ids in its key stay
    theirs; past ``max_entries`` the table starts over."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: dict[tuple, tuple[tuple, V]] = {}

    def get(self, sources: tuple, tag: str, make: Callable[[], V]) -> V:
        key = (tag, *map(id, sources))
        hit = self._entries.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], sources)):
            return hit[1]
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        value = make()
        self._entries[key] = (sources, value)
        return value
