import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection, connections

from keys.services import key_generate
from spend.models import SpendLog, SpendLogTag
from spend.records import SpendRecord
from spend import writer as writer_module
from spend.writer import COPY_FIELDS, SpendWriter, write_batch
from teams.models import Customer, Team
from tests.factories import spend_record
from tests.servers.process import free_port
from tests.tasks.conftest import general_settings  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_a_batch_writes_one_row_per_request_with_its_tags():
    records = [spend_record(request_tags=["a", "b"]), spend_record(request_tags=["a"])]

    assert write_batch(records) == 2

    assert SpendLog.objects.count() == 2
    assert sorted(SpendLogTag.objects.values_list("tag", flat=True)) == ["a", "a", "b"]


def test_a_replayed_batch_is_written_once_and_charged_once():
    key, _ = key_generate(actor=None)
    records = [spend_record(api_key=key.token, spend=0.25)]

    write_batch(records)
    written_again = write_batch(records)

    key.refresh_from_db()
    assert written_again == 0
    assert SpendLog.objects.count() == 1
    assert key.spend == 0.25


def test_two_requests_with_the_same_provider_id_both_stay_in_the_ledger():
    write_batch([spend_record(request_id="chatcmpl-same"), spend_record(request_id="chatcmpl-same")])

    assert SpendLog.objects.filter(request_id="chatcmpl-same").count() == 2


def test_spend_is_added_to_key_team_user_and_customer():
    team = Team.objects.create(team_alias="t")
    key, _ = key_generate(actor=None, user_id="alice", team_id=team.team_id)

    write_batch([spend_record(api_key=key.token, team_id=team.team_id, user="alice", end_user="cust-1", spend=0.5),
                 spend_record(api_key=key.token, team_id=team.team_id, user="alice", end_user="cust-1", spend=0.25)])

    key.refresh_from_db()
    team.refresh_from_db()
    key.user.refresh_from_db()
    assert key.spend == team.spend == key.user.spend == 0.75
    assert Customer.objects.get(user_id="cust-1").spend == 0.75


def test_a_batchs_spend_is_added_by_one_statement_per_table_whatever_its_number_of_keys():
    """A prepared UPDATE run for every key of the batch at once (executemany: pipelined on PostgreSQL), not a
    queryset ``update`` built and compiled per key."""
    from django.test.utils import CaptureQueriesContext

    keys = [key_generate(actor=None)[0] for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        write_batch([spend_record(api_key=key.token, spend=0.5 + i) for i, key in enumerate(keys)])

    updates = [q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert len(updates) == 1 and updates[0].startswith("3 times: UPDATE") and "keys_virtualkey" in updates[0]
    for i, key in enumerate(keys):
        key.refresh_from_db()
        assert key.spend == 0.5 + i


def test_failed_requests_are_rows_too():
    write_batch([spend_record(status="failure", spend=0.0, prompt_tokens=0, completion_tokens=0)])

    assert SpendLog.objects.get().status == "failure"


def test_nul_bytes_from_clients_are_stripped_before_storing():
    write_batch([spend_record(model_group="gpt\x00-evil", end_user="u\x00", request_tags=["t\x00ag"],
                              metadata={"spend_logs_metadata": {"k\x00": "v\x00"}})])

    row = SpendLog.objects.get()
    assert row.model_group == "gpt-evil" and row.end_user == "u"
    assert row.metadata == {"spend_logs_metadata": {"k": "v"}}
    assert SpendLogTag.objects.get().tag == "tag"


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite does not enforce varchar lengths")
def test_a_row_the_database_refuses_does_not_hold_back_the_rest_of_its_batch(caplog):
    from spend.writer import write_batch_isolating

    bad = spend_record(request_id="x" * 300)  # longer than the column
    written = write_batch_isolating([spend_record(), bad, spend_record()])

    assert written == 2
    assert SpendLog.objects.count() == 2
    assert bad.call_id in caplog.text


def test_the_copy_covers_every_column_of_the_spend_log():
    # COPY applies no Django default: a field added to the model must be added to the copy too.
    from spend.writer import COPY_FIELDS

    assert sorted(COPY_FIELDS) == sorted(field.attname for field in SpendLog._meta.concrete_fields)


@pytest.mark.parametrize("spend", [0.0123, None])
def test_every_field_of_a_record_is_stored_as_given(spend):
    started = datetime(2026, 11, 3, 10, 0, 0, 123456, tzinfo=timezone.utc)
    record = spend_record(
        request_id="chatcmpl-all", call_type="aembedding", status="failure", api_key="k" * 64, key_alias="alias",
        team_id="team-1", user="alice", end_user="cust-9", model="openai/gpt-4o", model_group="gpt",
        model_id="dep-1", custom_llm_provider="openai", api_base="https://api.example/v1", prompt_tokens=7,
        completion_tokens=5, spend=spend, start_time=started, end_time=started + timedelta(seconds=2),
        completion_start_time=started + timedelta(milliseconds=300), request_tags=["a", "b é"],
        metadata={"spend_logs_metadata": {"n": 2 ** 70, "list": [1, 2.5, None, True], "quote": "a\"b\\c\td\ne"}},
        requester_ip_address="10.0.0.7")

    write_batch([record])

    row = SpendLog.objects.get()
    for name in SpendRecord.__slots__:
        assert getattr(row, name) == getattr(record, name), name
    assert row.total_tokens == 12


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="COPY is PostgreSQL's")
def test_on_postgresql_the_rows_go_in_by_copy_not_by_insert():
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert write_batch([spend_record(), spend_record()]) == 2

    assert SpendLog.objects.count() == 2
    assert not [q for q in queries.captured_queries if q["sql"].startswith("INSERT") and "spendlog\"" in q["sql"].lower()]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="the INSERT path is SQLite's")
def test_on_sqlite_a_batch_goes_in_by_as_few_inserts_as_sqlite_binds_parameters_for():
    """Each statement's preparing and step release the GIL, which a busy event loop then keeps for a switch
    interval: a batch written row by row (``executemany``), or 41 rows at a time (Django's 999-parameter bound),
    crawls under load. Counted by SQLite itself: the statements it ran."""
    import sqlite3

    records = [spend_record() for _ in range(100)]
    connection.ensure_connection()
    variables = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = min(writer_module.MAX_ROWS_PER_INSERT, variables // len(COPY_FIELDS))
    statements: list[str] = []
    connection.connection.set_trace_callback(statements.append)
    try:
        assert write_batch(records) == 100
    finally:
        connection.connection.set_trace_callback(None)

    inserts = [sql for sql in statements if sql.startswith("INSERT INTO \"spend_spendlog\"")]
    assert len(inserts) == -(-100 // per_statement)
    if variables >= 100 * len(COPY_FIELDS):   # any SQLite since 3.32 (32,766 parameters)
        assert len(inserts) == 1
    assert SpendLog.objects.count() == 100


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("waiting, batches", [(30, [10, 10, 10]), (50, [50])])
def test_a_round_that_finds_many_batches_waiting_writes_them_in_larger_transactions(settings, monkeypatch,
                                                                                  waiting, batches):
    """Up to four batches' worth, a round writes batches of ``GATEWAY_SPEND_BATCH_SIZE``; past that the writer
    is behind, and each transaction takes ten batches' worth (the rows it finds, here)."""
    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 600
    settings.GATEWAY_SPEND_BATCH_SIZE = 10
    written: list[int] = []
    write = writer_module._write_on_writer_thread

    def counted(records, unseen=False):
        written.append(len(records))
        return write(records, unseen)

    monkeypatch.setattr(writer_module, "_write_on_writer_thread", counted)

    async def scenario() -> None:
        writer = SpendWriter()
        for _ in range(waiting):
            writer.add(spend_record())
        await writer.flush(until_empty=False)
        await writer.stop()
        await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)

    asyncio.run(scenario())

    assert written == batches
    assert SpendLog.objects.count() == waiting


@pytest.mark.django_db(transaction=True)
def test_rows_arriving_during_a_periodic_flush_wait_for_the_next_batch(settings):
    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 600   # no timed flush of its own during the test
    first, arriving = [spend_record() for _ in range(5)], [spend_record() for _ in range(3)]

    async def scenario() -> tuple[int, int]:
        writer = SpendWriter()
        for record in first:
            writer.add(record)
        periodic = asyncio.create_task(writer.flush(until_empty=False))
        await asyncio.sleep(0)   # it has taken its rows and waits for the writer thread
        for record in arriving:
            writer.add(record)
        await periodic
        left_for_next_round = writer.pending
        await writer.flush()     # a full flush (shutdown) takes everything
        left_after_full = writer.pending
        await writer.stop()
        await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)
        return left_for_next_round, left_after_full

    left_for_next_round, left_after_full = asyncio.run(scenario())

    assert (left_for_next_round, left_after_full) == (3, 0)
    assert SpendLog.objects.count() == 8


def test_a_batch_known_to_be_unseen_is_written_without_looking_for_written_ids():
    from django.test.utils import CaptureQueriesContext

    records = [spend_record(), spend_record()]
    with CaptureQueriesContext(connection) as queries:
        assert write_batch(records, unseen=True) == 2

    assert SpendLog.objects.count() == 2
    assert not [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]


@pytest.mark.django_db(transaction=True)
def test_the_writer_looks_for_written_ids_only_in_a_batch_an_earlier_attempt_may_have_written(monkeypatch):
    from django.db import OperationalError

    from spend import writer as writer_module

    real, calls = writer_module._write_on_writer_thread, []

    def lost_answer_once(records, unseen=False):
        calls.append((len(records), unseen))
        written = real(records, unseen)
        if len(calls) == 1:   # committed, but the answer never came back
            raise OperationalError("server closed the connection unexpectedly")
        return written

    monkeypatch.setattr(writer_module, "_write_on_writer_thread", lost_answer_once)
    key, _ = key_generate(actor=None)
    first, later = [spend_record(api_key=key.token, spend=0.5) for _ in range(2)], [spend_record(api_key=key.token)]

    async def scenario() -> None:
        writer = SpendWriter()
        for record in first:
            writer.add(record)
        await writer.flush()            # written, reported failed: the rows stay buffered
        for record in later:
            writer.add(record)
        await writer.flush()            # the two again with the new one: one batch, with the look-up
        await writer.stop()
        await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)

    asyncio.run(scenario())

    assert calls == [(2, True), (3, False)]
    assert SpendLog.objects.count() == 3
    key.refresh_from_db()
    assert key.spend == pytest.approx(1.005)


@pytest.mark.django_db(transaction=True)
def test_rows_a_failed_hand_over_to_the_stream_gave_back_are_written_with_the_look_up(monkeypatch):
    # A pipeline of XADDs that failed may have left some entries in the stream, which a consumer writes too.
    from spend import writer as writer_module
    from spend.stream import RedisJournal

    real, calls = writer_module._write_on_writer_thread, []
    monkeypatch.setattr(writer_module, "_write_on_writer_thread",
                        lambda records, unseen=False: calls.append(unseen) or real(records, unseen))

    async def scenario() -> None:
        writer = SpendWriter()
        writer.journal = RedisJournal(f"redis://127.0.0.1:{free_port()}/0", "spend-test", interval=0.005,
                                      claim_idle=60, batch_size=100, flush_interval=1)
        writer.add(spend_record())
        await writer._forward()          # nobody listens there: the hand-over fails, the row comes back
        assert writer.pending == 1
        await writer.flush()
        await asyncio.get_running_loop().run_in_executor(writer._executor, connections.close_all)

    asyncio.run(scenario())

    assert calls == [False]
    assert SpendLog.objects.count() == 1


def test_with_spend_logs_disabled_spend_is_kept_but_no_row_is_written(general_settings):
    general_settings(disable_spend_logs=True)
    key, _ = key_generate(actor=None)

    written = write_batch([spend_record(api_key=key.token, spend=0.25, request_tags=["a"]),
                           spend_record(api_key=key.token, spend=0.5)])

    key.refresh_from_db()
    assert written == 2
    assert key.spend == 0.75
    assert not SpendLog.objects.exists() and not SpendLogTag.objects.exists()
