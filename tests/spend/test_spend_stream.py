"""The spend-event stream (spend.stream) against a private Redis: records pass through it to the
database once, a dead consumer's entries are taken over, and without Redis the writer carries on."""
import asyncio
import uuid

import pytest
from django.db import connections

from keys.services import key_generate
from spend.models import SpendLog
from spend.records import decode, encode
from spend.stream import GROUP, NullJournal, RedisJournal
from spend.writer import SpendWriter
from tests.factories import spend_record
from tests.servers.redis_server import PrivateRedis
from tests.spend.waiting import until


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with PrivateRedis(tmp_path_factory.mktemp("spend-stream")) as server:
        yield server


@pytest.fixture(autouse=True)
def fast_flushes(settings, tmp_path):
    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 0.05
    settings.DATA_DIR = tmp_path


def journal(url: str, **overrides) -> RedisJournal:
    options = dict(interval=0.005, claim_idle=0.2, batch_size=500, flush_interval=0.05)
    options.update(overrides)
    return RedisJournal(url, f"test-{uuid.uuid4().hex}:spend-events", **options)


async def stop(writer: SpendWriter) -> None:
    await writer.stop()
    await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)


def count_rows(**filters) -> int:
    return SpendLog.objects.filter(**filters).count()


def test_a_record_survives_encoding_unchanged():
    record = spend_record(request_tags=["a"], metadata={"k": {"n": 1}}, completion_start_time=None)

    assert decode(encode(record)) == record


def test_one_entry_carries_a_whole_hand_over(redis_server):
    stream = journal(redis_server.url)

    assert asyncio.run(stream.append([spend_record() for _ in range(3)]))

    assert redis_server.client().xlen(stream.key) == 1


def test_fields_an_older_version_does_not_know_are_ignored():
    payload = encode(spend_record())[:-1] + b',"field_from_the_future":1}'

    assert decode(payload).call_id


@pytest.mark.django_db(transaction=True)
def test_records_pass_through_the_stream_to_the_database_and_are_acknowledged(redis_server):
    stream = journal(redis_server.url)
    records = [spend_record() for _ in range(20)]

    async def serve():
        writer = SpendWriter()
        writer.start(journal=stream)
        for record in records:
            writer.add(record)
        await until(lambda: count_rows() == 20)
        pending = await stream._client.xpending(stream.key, GROUP)
        await stop(writer)
        return pending

    pending = asyncio.run(serve())

    assert pending["pending"] == 0
    assert redis_server.client().xlen(stream.key) <= 20   # acknowledged entries are trimmed (approximately)


@pytest.mark.django_db(transaction=True)
def test_an_entry_delivered_twice_is_one_row_charged_once(redis_server):
    key, _ = key_generate(actor=None)
    record = spend_record(api_key=key.token, spend=0.25)
    stream = journal(redis_server.url)

    async def serve():
        for _ in range(2):   # e.g. an XADD retried after its reply was lost
            assert await stream.append([record])
        writer = SpendWriter()
        writer.start(journal=stream)
        await until(lambda: count_rows(call_id=record.call_id) == 1)
        await until(lambda: redis_server.client().xpending(stream.key, GROUP)["pending"] == 0)
        await stop(writer)

    asyncio.run(serve())

    key.refresh_from_db()
    assert key.spend == 0.25


@pytest.mark.django_db(transaction=True)
def test_entries_a_dead_consumer_read_but_never_acknowledged_are_taken_over(redis_server):
    stream = journal(redis_server.url)
    records = [spend_record() for _ in range(5)]
    sync = redis_server.client()

    async def serve():
        for record in records:   # five hand-overs, five entries
            assert await stream.append([record])
        sync.xgroup_create(stream.key, GROUP, id="0")
        read = sync.xreadgroup(GROUP, "killed-worker", {stream.key: ">"}, count=3)   # then it died
        assert len(read[0][1]) == 3
        assert await stream.backlog() == 5   # 3 read and unacknowledged, 2 never read
        writer = SpendWriter()
        writer.start(journal=stream)
        await until(lambda: count_rows() == 5)
        await until(lambda: sync.xpending(stream.key, GROUP)["pending"] == 0)
        await stop(writer)

    asyncio.run(serve())

    assert count_rows() == 5


@pytest.mark.django_db(transaction=True)
def test_with_redis_unreachable_records_go_to_the_database_directly():
    stream = journal("redis://127.0.0.1:1/0")   # nothing listens there
    records = [spend_record() for _ in range(3)]

    async def serve():
        writer = SpendWriter()
        writer.start(journal=stream)
        for record in records:
            writer.add(record)
        await until(lambda: count_rows() == 3)
        ready = await stream.readiness()
        await stop(writer)
        return ready

    assert asyncio.run(serve()) == (False, "unreachable")


@pytest.mark.django_db(transaction=True)
def test_without_redis_the_writer_keeps_its_batches():
    async def serve():
        writer = SpendWriter()
        writer.start(journal=NullJournal())
        writer.add(spend_record())
        await until(lambda: count_rows() == 1)
        ready = await writer.journal.readiness()
        await stop(writer)
        return ready

    assert asyncio.run(serve()) == (True, "disabled")


@pytest.mark.django_db(transaction=True)
def test_a_graceful_stop_writes_what_waits_in_the_stream(redis_server):
    stream = journal(redis_server.url, flush_interval=60)   # the consumer would wait a minute between batches
    records = [spend_record() for _ in range(10)]

    async def serve():
        writer = SpendWriter()
        writer.start(journal=stream)
        writer.add(records[0])
        await until(lambda: count_rows() == 1)   # the consumer wrote its first batch and now waits
        for record in records[1:]:
            writer.add(record)
        await until(lambda: writer.pending == 0)   # handed to the stream, where the consumer leaves them
        await stop(writer)

    asyncio.run(serve())

    assert count_rows() == 10


@pytest.mark.django_db(transaction=True)
def test_rows_spooled_while_both_were_down_are_written_at_the_next_start_with_redis(redis_server):
    from spend import spool

    records = [spend_record(), spend_record()]
    spool.spill(records)
    stream = journal(redis_server.url)

    async def next_start():
        writer = SpendWriter()
        writer.start(journal=stream)
        await until(lambda: count_rows() == 2)
        await stop(writer)

    asyncio.run(next_start())

    assert list(spool.spool_dir().iterdir()) == []
