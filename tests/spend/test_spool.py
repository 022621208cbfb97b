"""Spend rows the database could not take at shutdown survive on disk and are written once later."""
import asyncio

import pytest

from spend import spool
from spend.models import SpendLog
from spend.writer import SpendWriter
from tests.factories import spend_record


@pytest.fixture(autouse=True)
def data_dir(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_a_spilled_batch_loads_back_identical():
    records = [spend_record(request_tags=["a"], metadata={"k": "v"}), spend_record(completion_start_time=None)]

    path = spool.spill(records)

    assert spool.load(path) == records


@pytest.mark.django_db(transaction=True)
def test_spooled_rows_are_written_at_the_next_start_and_the_file_removed():
    records = [spend_record(), spend_record()]
    spool.spill(records)

    async def next_start():
        writer = SpendWriter()
        writer.start()
        await writer.stop()

    asyncio.run(next_start())

    assert SpendLog.objects.count() == 2
    assert list(spool.spool_dir().iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_a_spool_replayed_twice_still_gives_one_row_per_request():
    records = [spend_record()]
    spool.spill(records)
    spool.spill(records)  # e.g. a crash after writing but before removing the file

    async def next_start():
        writer = SpendWriter()
        writer.start()
        await writer.stop()

    asyncio.run(next_start())

    assert SpendLog.objects.count() == 1


def test_two_workers_never_claim_the_same_file():
    spool.spill([spend_record()])

    first, second = spool.claim_next(), spool.claim_next()

    assert first is not None and second is None
