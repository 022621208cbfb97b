"""Monthly partitions of the spend log on PostgreSQL (docs/deploy.md, "Partitioning the spend log").

On PostgreSQL ``spend_spendlog`` and ``spend_spendlogtag`` are range-partitioned by ``start_time``
(migration ``0005``): one partition per UTC month, ``spend_spendlog_y2026m11`` holding
``[2026-11-01, 2026-12-01)``, and a DEFAULT partition, ``spend_spendlog_default``, for a row of a
month without one (a clock far off, a spool replayed months later): such a row is stored, never lost.
A tag row has its request's ``start_time``, so both tables' partitions of a month hold the same requests.

``ensure_partitions`` creates this month's and the next months' partitions ahead of time (the
``spend-partitions-ensure`` job, and after every ``migrate``); ``drop_partitions`` is what retention
uses to remove whole months. On any other database every function here does nothing: SQLite keeps
the plain tables and retention deletes rows in batches.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone as django_timezone

logger = logging.getLogger("gateway.jobs")

LOG_TABLE = "spend_spendlog"
TAG_TABLE = "spend_spendlogtag"
TABLES = (LOG_TABLE, TAG_TABLE)
# pg_advisory_xact_lock key shared by everything that adds or removes partitions (any 64-bit constant).
LOCK_KEY = 0x5E4D_9A27_0001
# DDL waits at most this long for a lock: attaching a partition locks DEFAULT exclusively, detaching
# one locks the parent, and both conflict with any open transaction that read the spend log. Past
# this the run fails and is retried later, rather than queue the gateway's reads and writes behind
# it for as long as a long report runs.
LOCK_TIMEOUT = "2s"


def month_start(value: date | datetime) -> date:
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc) if django_timezone.is_aware(value) else value
        value = value.date()
    return value.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """A month's partition range, ``[first instant, first instant of the next month)`` in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=timezone.utc)
    end = add_months(month, 1)
    return start, datetime(end.year, end.month, 1, tzinfo=timezone.utc)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def default_partition_name(table: str) -> str:
    return f"{table}_default"


def timestamp_literal(value: datetime) -> str:
    """A UTC instant as a SQL literal for partition bounds (built from a datetime, never from input)."""
    return "'" + value.astimezone(timezone.utc).isoformat() + "'"


def is_partitioned(using: str = "default") -> bool:
    """Whether the spend log is a partitioned table here (PostgreSQL after migration 0005)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [LOG_TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    month: date | None   # None: the DEFAULT partition, or one not named by the scheme above
    is_default: bool


def partitions(table: str = LOG_TABLE, using: str = "default") -> list[Partition]:
    """The partitions attached to ``table``, months in order, then the DEFAULT one."""
    pattern = re.compile(rf"^{re.escape(table)}_y(\d{{4}})m(\d{{2}})$")
    with connections[using].cursor() as cursor:
        cursor.execute("""
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)""", [table])
        rows = cursor.fetchall()
    found = []
    for name, is_default in rows:
        match = pattern.match(name)
        month = date(int(match[1]), int(match[2]), 1) if match and not is_default else None
        found.append(Partition(table=table, name=name, month=month, is_default=bool(is_default)))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min, p.name))


def _locked(cursor, *, wait: bool) -> bool:
    """Take the partition-maintenance lock for this transaction; ``wait=False``: give up if taken."""
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    if wait:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        return True
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
    return bool(cursor.fetchone()[0])


def ensure_partitions(*, now: datetime | None = None, ahead: int | None = None, using: str = "default") -> list[str]:
    """Create the partitions of the current month and the ``ahead`` next ones that are missing
    (``GATEWAY_SPEND_PARTITIONS_AHEAD``, default 3); return the names created.

    Idempotent and safe to run from several workers at once: each run holds an advisory lock, and a
    run that finds it taken does nothing (the other is doing the work). A partition is created as a
    table of its own and then attached: ``ATTACH PARTITION`` locks the parent only against other
    schema changes (``CREATE TABLE … PARTITION OF`` would lock out every reader), but it locks the
    DEFAULT partition exclusively for a moment, waiting ``LOCK_TIMEOUT`` at most. Rows of that month
    already in the DEFAULT partition are moved into it in the same transaction (attaching would fail
    otherwise); that only happens when a row arrived more than ``ahead`` months early.
    """
    if not is_partitioned(using):
        return []
    ahead = settings.GATEWAY_SPEND_PARTITIONS_AHEAD if ahead is None else ahead
    first = month_start(now or django_timezone.now())
    months = [add_months(first, i) for i in range(ahead + 1)]
    existing = {p.name for table in TABLES for p in partitions(table, using)}
    missing = [(table, month) for month in months for table in TABLES
               if partition_name(table, month) not in existing]
    created = []
    for table, month in missing:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            if not _locked(cursor, wait=False):
                logger.info("partitions: another process is creating them; this run leaves it to that one")
                return created
            if _create_partition(cursor, table, month, using):
                created.append(partition_name(table, month))
    if created:
        logger.info("partitions: created %s", ", ".join(created))
    return created


def _create_partition(cursor, table: str, month: date, using: str) -> bool:
    name = partition_name(table, month)
    if name in {p.name for p in partitions(table, using)}:
        return False  # created meanwhile by a run that held the lock before this one
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        logger.error("partitions: a table %s exists but is not a partition of %s; left alone", name, table)
        return False
    start, end = month_bounds(month)
    lower, upper = timestamp_literal(start), timestamp_literal(end)
    qn = connections[using].ops.quote_name
    default = default_partition_name(table)
    cursor.execute(f"CREATE TABLE {qn(name)} (LIKE {qn(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    if any(p.is_default for p in partitions(table, using)):
        # Writers to the DEFAULT partition (rows of months without one) wait for this transaction;
        # nobody else does. Its rows of this month move to the new partition before it is attached.
        cursor.execute(f"LOCK TABLE {qn(default)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"""
            WITH moved AS (DELETE FROM {qn(default)} WHERE start_time >= {lower} AND start_time < {upper}
                           RETURNING *)
            INSERT INTO {qn(name)} SELECT * FROM moved""")
        if cursor.rowcount:
            logger.warning("partitions: moved %d rows of %s from %s into %s", cursor.rowcount,
                           month.isoformat()[:7], default, name)
    cursor.execute(f"ALTER TABLE {qn(table)} ATTACH PARTITION {qn(name)} FOR VALUES FROM ({lower}) TO ({upper})")
    return True


def droppable_months(older_than: datetime, using: str = "default") -> list[date]:
    """The months whose partitions lie entirely before ``older_than`` (their end at or before it)."""
    if not is_partitioned(using):
        return []
    months = {p.month for table in TABLES for p in partitions(table, using) if p.month is not None}
    return sorted(month for month in months if month_bounds(month)[1] <= older_than)


def drop_partitions(month: date, using: str = "default") -> int:
    """Detach and drop ``month``'s partitions of the spend log and its tag rows; return the log rows
    they held. One short transaction: the parent tables are locked only for the detach itself."""
    qn = connections[using].ops.quote_name
    rows = 0
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _locked(cursor, wait=True)
        attached = {p.name for table in TABLES for p in partitions(table, using)}
        for table in TABLES:
            name = partition_name(table, month)
            if name not in attached:
                continue
            if table == LOG_TABLE:
                cursor.execute(f"SELECT count(*) FROM {qn(name)}")
                rows = cursor.fetchone()[0]
            cursor.execute(f"ALTER TABLE {qn(table)} DETACH PARTITION {qn(name)}")
            cursor.execute(f"DROP TABLE {qn(name)}")
    return rows
