"""The hot path's snapshot caches: an entry in steady use is re-read behind the requests, never on their path."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest
from django.db import OperationalError

from gateway_project.snapshots import SnapshotCache

TTL = 60.0


class Rows:
    """A loader whose reads wait until the test lets them through (``release``), counting them."""

    def __init__(self, value: str | None) -> None:
        self.value = value
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self, key: str) -> str | None:
        self.reads += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.value


def expire(cache: SnapshotCache, key: str, seconds_ago: float) -> None:
    value = cache._entries[key][1]
    cache._entries[key] = (time.monotonic() - seconds_ago, value)


async def expired(rows: Rows, seconds_ago: float = 1) -> SnapshotCache:
    """A cache holding ``k`` as ``rows`` first gave it, expired ``seconds_ago``."""
    cache = SnapshotCache("key", rows, ttl=lambda: TTL)
    await cache.get("k")
    expire(cache, "k", seconds_ago=seconds_ago)
    return cache


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_recently_expired_entry_is_served_at_once_and_read_again_behind_the_requests():
    async def scenario():
        rows = Rows("v1")
        cache = await expired(rows)
        rows.value, rows.gate = "v2", asyncio.Event()   # the database now holds v2, and answers slowly

        served = [await asyncio.wait_for(cache.get("k"), timeout=1) for _ in range(3)]   # none waits
        reads_meanwhile = rows.reads
        rows.gate.set()
        await settle()
        return served, reads_meanwhile, await cache.get("k"), rows.reads

    served, reads_meanwhile, after, reads = asyncio.run(scenario())

    assert served == ["v1", "v1", "v1"]
    assert reads_meanwhile == 2          # the first load, and one read behind for the three requests
    assert (after, reads) == ("v2", 2)   # the read stored what it found: no further read


@pytest.mark.parametrize("value, seconds_ago", [("v1", TTL + 1), (None, 1)],
                         ids=["expired-longer-than-another-ttl", "known-not-to-exist"])
def test_an_entry_expired_long_ago_or_negative_is_read_before_answering(value, seconds_ago):
    async def scenario():
        rows = Rows(value)
        cache = await expired(rows, seconds_ago)
        rows.value = "v2"
        return await cache.get("k"), rows.reads

    assert asyncio.run(scenario()) == ("v2", 2)


def test_an_invalidated_entry_is_read_before_answering():
    async def scenario():
        rows = Rows("v1")
        cache = SnapshotCache("key", rows, ttl=lambda: TTL)
        await cache.get("k")
        rows.value = "v2"
        cache.invalidate("k")
        return await cache.get("k")

    assert asyncio.run(scenario()) == "v2"


async def read_behind_failing(error: Exception) -> tuple[SnapshotCache, Rows, str]:
    """An expired entry, served while the read behind it fails with ``error``; and what was served."""
    rows = Rows("v1")
    cache = await expired(rows)
    rows.fail = error
    served = await cache.get("k")
    await settle()
    return cache, rows, served


def test_a_read_behind_that_finds_the_database_down_keeps_the_entry_for_another_ttl(caplog):
    async def scenario():
        cache, rows, first = await read_behind_failing(OperationalError("connection refused"))
        return first, await cache.get("k"), rows.reads, cache._entries["k"][0] > time.monotonic()

    with caplog.at_level(logging.WARNING, logger="gateway.cache"):
        first, second, reads, fresh_again = asyncio.run(scenario())

    assert (first, second, reads, fresh_again) == ("v1", "v1", 2, True)
    assert "serving the last known key" in caplog.text


def test_a_read_behind_that_breaks_is_logged_and_the_next_request_reads_again(caplog):
    async def scenario():
        cache, rows, served = await read_behind_failing(RuntimeError("a bug in the loader"))
        rows.fail, rows.value = None, "v2"
        await cache.get("k")     # still the old entry, recently expired: served, read behind again
        await settle()
        return served, await cache.get("k"), rows.reads

    with caplog.at_level(logging.ERROR, logger="gateway.cache"):
        assert asyncio.run(scenario()) == ("v1", "v2", 3)
    assert "reading a key snapshot behind the requests failed" in caplog.text
    assert "a bug in the loader" in caplog.text


def test_a_read_behind_cancelled_before_it_ran_leaves_no_read_pending():
    async def scenario():
        rows = Rows("v1")
        cache = await expired(rows)
        served = await cache.get("k")
        for task in list(cache._refreshing):
            task.cancel()   # as the loop closing would, before its first step
        await settle()
        rows.value = "v2"
        again = await asyncio.wait_for(cache.get("k"), timeout=1)   # not waiting on a read that never comes
        await settle()
        return served, again, await cache.get("k"), cache._loading

    assert asyncio.run(scenario()) == ("v1", "v1", "v2", {})
