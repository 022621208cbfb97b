"""The spend writer's backlog is bounded: past ``GATEWAY_SPEND_MAX_BACKLOG`` rows waiting to be written,
requests wait for the writer (``SpendWriter.room``) instead of letting its buffer grow without end, except
while writes fail (a database outage), when nobody waits."""
from __future__ import annotations

import asyncio
import time

import pytest
from django.db import connections

from gateway_project.asgi import application
from spend import recorder
from spend import writer as writer_module
from spend.models import SpendLog
from spend.writer import SpendWriter
from tests.asgi import exchange
from tests.conftest import MASTER_KEY
from tests.factories import spend_record

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = b'{"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
def slow_writer(settings):
    """A writer whose own round comes only when woken (no timed flush during a test), bounded at 3 rows."""
    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 600
    settings.GATEWAY_SPEND_BATCH_SIZE = 100
    settings.GATEWAY_SPEND_MAX_BACKLOG = 3
    return SpendWriter()


@pytest.fixture
def database_down(monkeypatch):
    """Every write of the writer thread fails, as while the database is unreachable."""
    def refused(records, unseen=False):
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(writer_module, "_write_on_writer_thread", refused)


async def _closed(writer: SpendWriter) -> None:
    await writer.stop()
    await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)


def test_past_its_bound_a_request_waits_until_the_writer_has_written_the_backlog(slow_writer):
    async def scenario() -> tuple[bool, int, int]:
        for _ in range(5):
            slow_writer.add(spend_record())
        behind = slow_writer.backlogged
        await asyncio.wait_for(slow_writer.room(), 10)
        stored, pending = await asyncio.to_thread(SpendLog.objects.count), slow_writer.pending
        await _closed(slow_writer)
        return behind, stored, pending

    behind, stored, pending = asyncio.run(scenario())

    assert behind
    assert (stored, pending) == (5, 0)


def test_under_its_bound_nobody_waits(slow_writer):
    async def scenario() -> tuple[bool, int]:
        for _ in range(3):
            slow_writer.add(spend_record())
        behind = slow_writer.backlogged
        pending = slow_writer.pending
        await _closed(slow_writer)
        return behind, pending

    assert asyncio.run(scenario()) == (False, 3)


def test_while_writes_fail_nobody_waits_and_the_rows_are_kept(slow_writer, database_down):
    async def scenario() -> tuple[float, float, int]:
        for _ in range(5):
            slow_writer.add(spend_record())
        started = time.perf_counter()
        await slow_writer.room()            # the first waits for the round, which fails: it goes on
        first = time.perf_counter() - started
        started = time.perf_counter()
        await slow_writer.room()            # the writer is known to be failing: no wait at all
        second = time.perf_counter() - started
        pending = slow_writer.pending
        slow_writer._buffer.clear()         # nothing to flush at the end: the database is "down"
        await _closed(slow_writer)
        return first, second, pending

    first, second, pending = asyncio.run(scenario())

    assert first < writer_module.ROOM_WAIT and second < 0.5
    assert pending == 5


def test_a_request_waits_at_most_room_wait_and_the_wait_running_out_is_logged_once(slow_writer, monkeypatch,
                                                                                   caplog):
    monkeypatch.setattr(writer_module, "ROOM_WAIT", 0.2)
    write = writer_module._write_on_writer_thread

    def slow(records, unseen=False):   # the writer thread is busy well past the wait
        time.sleep(1.0)
        return write(records, unseen)

    monkeypatch.setattr(writer_module, "_write_on_writer_thread", slow)

    async def scenario() -> float:
        for _ in range(5):
            slow_writer.add(spend_record())
        started = time.perf_counter()
        await asyncio.gather(slow_writer.room(), slow_writer.room())
        waited = time.perf_counter() - started
        await _closed(slow_writer)
        return waited

    with caplog.at_level("WARNING", logger="gateway.spend"):
        waited = asyncio.run(scenario())

    assert 0.2 <= waited < 0.9
    ran_out = "spend writer behind: requests waited 0.2s for it and go on"
    assert [r.getMessage() for r in caplog.records].count(ran_out) == 1
    assert SpendLog.objects.count() == 5


def test_the_rows_waiting_in_memory_are_a_gauge_set_after_each_round(slow_writer, database_down):
    from spend import metrics

    async def scenario() -> float:
        for _ in range(5):
            slow_writer.add(spend_record())
        metrics.SPEND_ROWS_BUFFERED.set(0)
        await slow_writer.room()            # wakes a round, which fails and keeps the rows
        for _ in range(100):                # the gauge is set as the round ends
            if metrics.SPEND_ROWS_BUFFERED._value.get() == 5:
                break
            await asyncio.sleep(0.01)
        value = metrics.SPEND_ROWS_BUFFERED._value.get()
        slow_writer._buffer.clear()
        await _closed(slow_writer)
        return value

    assert asyncio.run(scenario()) == 5


def test_a_proxy_call_waits_for_a_writer_that_is_behind_before_it_is_admitted(slow_writer, monkeypatch):
    """Through the ASGI application: the call is answered only once the rows that were waiting are written."""
    monkeypatch.setattr(recorder, "writer", slow_writer)

    async def scenario() -> tuple[int, int, int]:
        for _ in range(5):
            slow_writer.add(spend_record())
        status, _, _ = await exchange(application, "POST", "/v1/chat/completions",
                                      [("authorization", f"Bearer {MASTER_KEY}"),
                                       ("content-type", "application/json")], CHAT)
        stored_when_answered = await asyncio.to_thread(SpendLog.objects.count)
        pending = slow_writer.pending   # the call's own row, buffered after its answer
        await _closed(slow_writer)
        return status, stored_when_answered, pending

    status, stored_when_answered, pending = asyncio.run(scenario())

    assert status == 200
    assert stored_when_answered == 5
    assert pending == 1
