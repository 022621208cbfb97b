"""The spend log partitioned by month on PostgreSQL: partitions ahead, retention by whole months,
rows of any date kept, a replay written once; and on SQLite the plain table, pruned in batches."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from spend import partitions, services, spend_report, spool, tasks
from spend.models import SpendDaily, SpendLog, SpendLogTag
from spend.writer import write_batch
from tests.factories import spend_record
from tests.tasks.conftest import general_settings  # noqa: F401 (fixture)

POSTGRES_ONLY = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="partitioning is PostgreSQL's; SQLite keeps the plain table")
NOW = datetime.now(timezone.utc)
THIS_MONTH = partitions.month_start(NOW)


def attached(table: str = "spend_spendlog") -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [table])
        return {row[0] for row in cursor.fetchall()}


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = %s)", [name])
        return cursor.fetchone()[0]


def partition_of(call_id: str, table: str = "spend_spendlog", column: str = "call_id") -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE {column} = %s", [call_id])
        return cursor.fetchone()[0]


def at(month: date, day: int, hour: int = 12) -> datetime:
    return datetime(month.year, month.month, day, hour, tzinfo=timezone.utc)


@POSTGRES_ONLY
@pytest.mark.django_db
def test_the_migration_leaves_both_tables_partitioned_with_months_ahead_and_a_default():
    with connection.cursor() as cursor:
        cursor.execute("""SELECT a.attname FROM pg_index i JOIN pg_attribute a
                          ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                          WHERE i.indrelid = 'spend_spendlog'::regclass AND i.indisprimary ORDER BY a.attnum""")
        primary_key = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT relkind FROM pg_class WHERE relname IN ('spend_spendlog', 'spend_spendlogtag')")
        kinds = {row[0] for row in cursor.fetchall()}

    assert kinds == {"p"} and primary_key == ["call_id", "start_time"]
    for table in partitions.TABLES:
        months = {partitions.partition_name(table, partitions.add_months(THIS_MONTH, i)) for i in range(4)}
        assert months | {f"{table}_default"} <= attached(table)


@POSTGRES_ONLY
@pytest.mark.django_db
def test_retention_drops_whole_old_months_and_keeps_the_report_of_the_kept_period():
    first = partitions.add_months(THIS_MONTH, -13)
    partitions.ensure_partitions(now=at(first, 1), ahead=13)  # 14 months, as a year of traffic would have
    records = [spend_record(start_time=at(month, day, hour), end_time=at(month, day, hour) + timedelta(seconds=1),
                            team_id=f"team-{i % 2}", api_key=f"key-{i % 3}", spend=0.1 * (1 + i % 4),
                            request_tags=["prod"] if i % 2 else [])
               for i, (month, day, hour) in enumerate((partitions.add_months(first, m), d, h)
                                                        for m in range(14) for d in (1, 15, 28) for h in (0, 23))
               if at(month, day, hour) < NOW]
    write_batch(records)
    cutoff = NOW - timedelta(days=183)
    kept_days = spend_report.ReportQuery(start=cutoff.date() + timedelta(days=1), end=NOW.date(), group_by="team")
    old_days = spend_report.ReportQuery(start=first, end=cutoff.date() - timedelta(days=32), group_by="day")
    report_before = spend_report.report_json(kept_days)
    old_before = spend_report.report_json(old_days)
    dropped = [month for month in (partitions.add_months(first, i) for i in range(14))
               if partitions.month_bounds(month)[1] <= cutoff]

    deleted = services.spend_logs_prune(older_than=cutoff)

    assert len(dropped) >= 6 and deleted == sum(r.start_time < cutoff for r in records)
    for table in partitions.TABLES:
        gone = {partitions.partition_name(table, month) for month in dropped}
        assert not gone & attached(table) and not any(table_exists(name) for name in gone)
        assert f"{table}_default" in attached(table)
    assert set(SpendLog.objects.values_list("call_id", flat=True)) == {r.call_id for r in records
                                                                       if r.start_time >= cutoff}
    assert SpendLogTag.objects.filter(start_time__lt=cutoff).count() == 0
    assert spend_report.report_json(kept_days) == report_before
    # The dropped months were rolled up first: their days still report the same totals.
    assert SpendDaily.objects.filter(day__lt=partitions.month_bounds(dropped[-1])[1].date()).exists()
    assert spend_report.report_json(old_days) == old_before


@POSTGRES_ONLY
@pytest.mark.django_db
def test_creating_partitions_ahead_is_idempotent():
    later = datetime(2040, 1, 10, tzinfo=timezone.utc)

    created = partitions.ensure_partitions(now=later, ahead=2)
    again = partitions.ensure_partitions(now=later, ahead=2)

    assert sorted(created) == sorted(f"{table}_y2040m{m:02d}" for table in partitions.TABLES for m in (1, 2, 3))
    assert again == []
    assert "spend_spendlog_y2040m03" in attached() and "spend_spendlogtag_y2040m03" in attached("spend_spendlogtag")


@POSTGRES_ONLY
@pytest.mark.django_db(transaction=True)
def test_two_workers_creating_the_same_partitions_at_once_create_each_once():
    later = datetime(2041, 6, 1, tzinfo=timezone.utc)
    expected = sorted(f"{table}_y2041m{m:02d}" for table in partitions.TABLES for m in (6, 7, 8))
    start, results, errors = threading.Barrier(2), [], []

    def worker():
        try:
            start.wait()
            results.append(partitions.ensure_partitions(now=later, ahead=2))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(results[0] + results[1]) == expected  # each created exactly once, by one of them
        assert partitions.ensure_partitions(now=later, ahead=2) == []
    finally:
        for month in (6, 7, 8):
            partitions.drop_partitions(date(2041, month, 1))
    assert not any(table_exists(name) for name in expected)


@POSTGRES_ONLY
@pytest.mark.django_db(transaction=True)
def test_adding_a_partition_behind_an_open_transaction_gives_up_and_succeeds_on_the_next_run():
    holding, release, errors = threading.Event(), threading.Event(), []

    def report():  # a long read of the spend log, which includes the DEFAULT partition
        try:
            with transaction.atomic():
                list(SpendLog.objects.filter(start_time__gte=NOW - timedelta(days=1)))
                holding.set()
                release.wait()
        except Exception as exc:  # reported below
            errors.append(exc)
            holding.set()
        finally:
            connections.close_all()

    later = datetime(2042, 3, 1, tzinfo=timezone.utc)
    thread = threading.Thread(target=report)
    thread.start()
    holding.wait()
    try:
        # Attaching locks DEFAULT exclusively: it waits lock_timeout at most, then fails (the task retries),
        # instead of holding every other reader of the spend log in the queue behind it.
        with pytest.raises(OperationalError, match="lock timeout"):
            partitions.ensure_partitions(now=later, ahead=0)
    finally:
        release.set()
        thread.join()
    assert errors == [] and not table_exists("spend_spendlog_y2042m03")  # the failed run left nothing behind

    try:
        assert partitions.ensure_partitions(now=later, ahead=0) == ["spend_spendlog_y2042m03",
                                                                    "spend_spendlogtag_y2042m03"]
    finally:
        partitions.drop_partitions(date(2042, 3, 1))


@POSTGRES_ONLY
@pytest.mark.django_db
def test_the_jobs_run_as_tasks_on_the_partitioned_table(general_settings):
    general_settings(maximum_spend_logs_retention_period="60d")
    old_month = partitions.add_months(THIS_MONTH, -5)
    partitions.ensure_partitions(now=at(old_month, 1), ahead=0)
    old, kept = spend_record(start_time=at(old_month, 10)), spend_record()
    write_batch([old, kept])

    assert tasks.spend_partitions_ensure() == 0  # the migration and post-migrate run made them already
    assert tasks.spend_logs_prune() == 1
    assert partitions.partition_name("spend_spendlog", old_month) not in attached()
    assert list(SpendLog.objects.values_list("call_id", flat=True)) == [kept.call_id]


@POSTGRES_ONLY
@pytest.mark.django_db
def test_a_replayed_batch_or_spool_is_still_written_once(tmp_path, settings):
    settings.DATA_DIR = str(tmp_path)
    records = [spend_record(request_tags=["a"]), spend_record(start_time=datetime(1999, 1, 1, tzinfo=timezone.utc))]
    write_batch(records)

    assert write_batch(records) == 0
    replayed = spool.load(spool.spill(records))  # through the spool's JSON and back
    assert write_batch(replayed) == 0
    # And the database itself: (call_id, start_time) is the key, and a replay has the same start_time.
    SpendLog.objects.bulk_create([SpendLog(call_id=r.call_id, request_id=r.request_id, call_type=r.call_type,
                                           status=r.status, start_time=r.start_time, end_time=r.end_time)
                                  for r in replayed], ignore_conflicts=True)
    assert SpendLog.objects.count() == 2 and SpendLogTag.objects.count() == 1


@POSTGRES_ONLY
@pytest.mark.django_db
def test_a_row_of_a_month_without_partition_lands_in_default_and_moves_when_its_month_is_created():
    future = spend_record(start_time=datetime(2099, 5, 2, tzinfo=timezone.utc), request_tags=["far"])
    past = spend_record(start_time=datetime(1990, 1, 1, tzinfo=timezone.utc))
    write_batch([future, past])
    assert partition_of(future.call_id) == partition_of(past.call_id) == "spend_spendlog_default"

    created = partitions.ensure_partitions(now=future.start_time, ahead=0)

    assert created == ["spend_spendlog_y2099m05", "spend_spendlogtag_y2099m05"]
    assert partition_of(future.call_id) == "spend_spendlog_y2099m05"
    assert partition_of(future.call_id, "spend_spendlogtag", "spend_log_id") == "spend_spendlogtag_y2099m05"
    assert SpendLog.objects.get(pk=future.call_id).tag_rows.get().tag == "far"
    # Retention never drops the DEFAULT partition: its old rows go by the batched delete.
    assert services.spend_logs_prune(older_than=NOW - timedelta(days=30)) == 1
    assert "spend_spendlog_default" in attached()
    assert list(SpendLog.objects.values_list("call_id", flat=True)) == [future.call_id]


@POSTGRES_ONLY
@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_rows_into_partitions_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate([("spend", "0004_spend_daily_exact")])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'spend_spendlog'")
            assert cursor.fetchone()[0] == "r"
            cursor.execute("""
                INSERT INTO spend_spendlog (call_id, request_id, call_type, api_key, team_id, model, model_group,
                    model_id, custom_llm_provider, api_base, prompt_tokens, completion_tokens, total_tokens, spend,
                    start_time, end_time, request_tags, metadata, status)
                SELECT 'call-' || i, 'r-' || i, 'acompletion', 'k', 't', 'm', 'g', '', '', '', 1, 1, 2, 0.01,
                    now() - i * interval '1 day', now() - i * interval '1 day', '["x"]', '{}', 'success'
                FROM generate_series(0, 399) AS i""")
            cursor.execute("""
                INSERT INTO spend_spendlog (call_id, request_id, call_type, api_key, team_id, model, model_group,
                    model_id, custom_llm_provider, api_base, prompt_tokens, completion_tokens, total_tokens, spend,
                    start_time, end_time, request_tags, metadata, status)
                VALUES ('call-odd', 'r-odd', 'acompletion', 'k', 't', 'm', 'g', '', '', '', 1, 1, 2, 0.01,
                    '1970-01-01', '1970-01-01', '[]', '{}', 'success')""")
            cursor.execute("""INSERT INTO spend_spendlogtag (tag, spend, start_time, spend_log_id)
                              SELECT 'x', spend, start_time, call_id FROM spend_spendlog WHERE call_id <> 'call-odd'""")
    finally:
        MigrationExecutor(connection).migrate([("spend", "0005_spend_log_partitioned")])

    oldest = partitions.month_start(NOW - timedelta(days=399))
    assert SpendLog.objects.count() == 401 and SpendLogTag.objects.count() == 400
    assert partition_of("call-odd") == "spend_spendlog_default"
    assert partition_of("call-399") == partitions.partition_name("spend_spendlog", oldest)
    assert partitions.partition_name("spend_spendlogtag", oldest) in attached("spend_spendlogtag")
    write_batch([spend_record(request_tags=["y"])])  # the tag id sequence continues after the copied ids
    assert SpendLogTag.objects.count() == 401
    for month in partitions.droppable_months(partitions.month_bounds(THIS_MONTH)[0]):  # as a fresh install
        partitions.drop_partitions(month)


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the plain (unpartitioned) table of SQLite")
@pytest.mark.django_db
def test_on_sqlite_the_plain_table_is_pruned_in_batches():
    old = spend_record(start_time=NOW - timedelta(days=400), request_tags=["a"])
    kept = spend_record(start_time=NOW - timedelta(days=2), request_tags=["a"])
    write_batch([old, kept])

    assert not partitions.is_partitioned() and partitions.ensure_partitions() == []
    assert partitions.droppable_months(NOW) == []
    assert services.spend_logs_prune(older_than=NOW - timedelta(days=30), batch_size=1) == 1
    assert list(SpendLog.objects.values_list("call_id", flat=True)) == [kept.call_id]
    assert list(SpendLogTag.objects.values_list("spend_log_id", flat=True)) == [kept.call_id]
