"""The in-flight journal (spend.inflight) against a private Redis and the test database: a dead process's
open streams are recorded once, as failed (partial) calls with their last checkpoint's tokens, and a
stream ending while a sweep takes it is recorded once, never twice."""
import asyncio
import uuid

import pytest
from django.db import connections

from keys.services import key_generate
from spend.inflight import ORPHAN_ERROR, payload
from spend.models import SpendLog
from spend.prices import Price
from spend.stream import GROUP, RedisJournal
from spend.writer import SpendWriter, write_batch
from tests.factories import spend_record
from tests.servers.redis_server import PrivateRedis
from tests.spend.waiting import closing, until

PRICE = Price(input_cost_per_token=0.000001, output_cost_per_token=0.000002)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with PrivateRedis(tmp_path_factory.mktemp("inflight")) as server:
        yield server


@pytest.fixture(autouse=True)
def fast_flushes(settings, tmp_path):
    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 0.05
    settings.DATA_DIR = tmp_path


def journals(url: str, count: int = 2) -> list[RedisJournal]:
    """``count`` processes' journals on one stream (one deployment)."""
    key = f"test-{uuid.uuid4().hex}:spend-events:db"
    return [RedisJournal(url, key, interval=0.005, claim_idle=0.2, batch_size=500, flush_interval=0.05,
                         checkpoint_interval=0.05, inflight_timeout=30) for _ in range(count)]


def opened(record) -> bytes:
    """The open entry the relay would hand over for ``record`` (failed, partial, no completion tokens yet)."""
    record.status, record.completion_tokens, record.spend = "failure", 0, 0.0
    record.metadata = {"status": "failure", "partial": True,
                       "error_information": {"error_code": "499", "error_message": ORPHAN_ERROR}}
    return payload(record, PRICE, None)


async def consume(stream: RedisJournal, wanted: int, sync) -> None:
    """Run a writer on ``stream`` until ``wanted`` rows exist and the stream is acknowledged."""
    writer = SpendWriter()
    writer.start(journal=stream)
    try:
        await until(lambda: SpendLog.objects.count() >= wanted)
        await until(lambda: sync.xpending(stream.key, GROUP)["pending"] == 0)
    finally:
        await writer.stop()
        await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)


def test_entries_checkpoints_and_heartbeat_reach_redis_together(redis_server):
    async def serve():
        (journal,) = journals(redis_server.url, 1)
        inflight = journal.inflight
        call = inflight.open("call-1", opened(spend_record(call_id="call-1")))
        call.completion_tokens = 7
        await inflight.write()
        sync = redis_server.client()
        assert sync.hkeys(inflight.key("calls")) == [b"call-1"]
        assert sync.hget(inflight.key("progress"), "call-1").split()[0] == b"7"
        assert sync.pttl(inflight.key("alive")) > 0
        assert await call.close()   # ended normally: this process records it
        assert sync.hlen(inflight.key("calls")) == 0 and sync.hlen(inflight.key("progress")) == 0
        await journal.stop()

    asyncio.run(serve())


def test_a_stream_that_ends_before_its_hand_over_costs_no_round_trip(redis_server):
    async def serve():
        (journal,) = journals(redis_server.url, 1)
        call = journal.inflight.open("call-2", opened(spend_record(call_id="call-2")))
        assert await call.close()
        await journal.inflight.write()   # nothing left to hand over
        assert redis_server.client().exists(journal.inflight.key("calls")) == 0
        await journal.stop()

    asyncio.run(serve())


@pytest.mark.django_db(transaction=True)
def test_a_dead_process_s_streams_are_recorded_once_as_partial_failures(redis_server):
    key, _ = key_generate(actor=None)
    records = [spend_record(api_key=key.token, prompt_tokens=10) for _ in range(3)]

    async def serve():
        dead, survivor = journals(redis_server.url)
        calls = [dead.inflight.open(r.call_id, opened(r)) for r in records]
        for tokens, call in zip((0, 5, 40), calls):
            call.completion_tokens = tokens
        await dead.inflight.write()
        assert await survivor.inflight.sweep() == 0   # its heartbeat is alive: not an orphan
        redis_server.client().delete(dead.inflight.key("alive"))   # SIGKILL: the heartbeat expires
        assert await survivor.inflight.sweep() == 3
        assert await survivor.inflight.sweep() == 0   # once
        await consume(survivor, 3, redis_server.client())
        await dead._client.aclose()

    asyncio.run(serve())

    rows = {row.call_id: row for row in SpendLog.objects.all()}
    assert set(rows) == {r.call_id for r in records}
    for record, tokens in zip(records, (0, 5, 40)):
        row = rows[record.call_id]
        assert (row.status, row.prompt_tokens, row.completion_tokens) == ("failure", 10, tokens)
        assert row.spend == pytest.approx(10 * 0.000001 + tokens * 0.000002)
        assert row.metadata["partial"] is True
        assert row.metadata["error_information"]["error_message"] == ORPHAN_ERROR
    key.refresh_from_db()
    assert key.spend == pytest.approx(sum(row.spend for row in rows.values()))
    sync = redis_server.client()
    assert not [k for k in sync.keys("test-*inflight*") if b":calls:" in k or b":procs" in k]


@pytest.mark.django_db(transaction=True)
def test_a_stream_ending_while_a_sweep_takes_it_is_recorded_once(redis_server):
    """The relay's close and the sweep race for each call: exactly one of them wins it, and only the winner's
    record is written (the key is charged once)."""
    key, _ = key_generate(actor=None)
    records = [spend_record(api_key=key.token, prompt_tokens=10) for _ in range(40)]

    async def serve():
        dying, survivor = journals(redis_server.url)
        calls = [dying.inflight.open(r.call_id, opened(spend_record(**{
            name: getattr(r, name) for name in ("call_id", "request_id", "start_time", "end_time", "api_key")},
            prompt_tokens=10))) for r in records]
        for call in calls:
            call.completion_tokens = 3
        await dying.inflight.write()
        redis_server.client().delete(dying.inflight.key("alive"))   # silent past the timeout, yet alive
        before = [await call.close() for call in calls[:10]]   # ended before the sweep: theirs
        # Then the sweep and ten relays ending all at once (each close is one script call); the last ten
        # end after the sweep took them.
        racing = await asyncio.gather(survivor.inflight.sweep(), *(call.close() for call in calls[10:20]))
        after = [await call.close() for call in calls[20:]]
        swept, kept = racing[0], before + racing[1:] + after
        assert before == [True] * 10 and after == [False] * 20
        finished = [r for r, keep in zip(records, kept) if keep]   # these record themselves, as normal
        assert swept + len(finished) == len(records)
        if finished:
            await asyncio.to_thread(closing(lambda: write_batch(finished)))
        await consume(survivor, len(records), redis_server.client())
        await dying._client.aclose()
        return swept

    swept = asyncio.run(serve())

    rows = list(SpendLog.objects.all())
    assert sorted(row.call_id for row in rows) == sorted(r.call_id for r in records)   # one each
    assert sum(row.status == "failure" for row in rows) == swept
    key.refresh_from_db()
    assert key.spend == pytest.approx(sum(row.spend for row in rows))
