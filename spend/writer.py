"""The batch writer: spend rows leave the request path through here.

``add`` only appends to an in-memory buffer. A background task on the server's event loop flushes
the buffer every ``flush_interval()`` seconds, or sooner once it holds ``GATEWAY_SPEND_BATCH_SIZE`` rows,
in one transaction on a dedicated thread (so the event loop never waits on the database). A failed flush
keeps its rows and retries; a row already written (same call id) is never written twice.
``general_settings.disable_spend_logs`` keeps spend but writes no rows.

With Redis (``spend.stream``) the buffer is not kept until the next database flush: every few
milliseconds (``GATEWAY_SPEND_STREAM_INTERVAL``) it is appended to the spend-event stream, whose
consumers write it to the database. While Redis cannot take it, the buffer is written to the
database directly, as without Redis.

A writer that falls behind (more than ``BEHIND_AFTER_BATCHES`` batches waiting when a round starts) writes
larger transactions until it has caught up; past ``GATEWAY_SPEND_MAX_BACKLOG`` waiting rows, proxy calls wait
for it (``room``) before they are admitted, except while writes fail.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import sqlite3
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter

import orjson
from django.conf import settings
from django.db import DataError, IntegrityError, close_old_connections, connection, transaction

from gateway_project.config import get_config
from keys.models import VirtualKey
from spend.models import SpendLog, SpendLogTag
from spend import alerts, metrics, spool
from spend.records import SpendRecord
from spend.stream import NullJournal, RedisJournal
from teams.models import Customer, Team, User

logger = logging.getLogger("gateway.spend")

# Past this many unwritten rows (a long database outage) the oldest are dropped, loudly, rather than
# exhausting memory.
MAX_BUFFERED = 200_000
# A round that finds more than this many batches waiting is behind (rows came in faster than the last rounds
# wrote them): it writes batches this many times larger. A transaction's fixed cost is mostly waits for the
# GIL, which a busy event loop holds (docs/performance.md, "The spend writer on SQLite").
BEHIND_AFTER_BATCHES = 4
CATCH_UP_FACTOR = 10
# How long a request waits at most for the writer to make room (``SpendWriter.room``), after which it goes on.
ROOM_WAIT = 5.0


def write_batch(records: list[SpendRecord], *, unseen: bool = False) -> int:
    """Write ``records`` and add their spend to keys, teams, users and customers; return rows written.

    A row whose call id is in the table already (a batch replayed from the stream or the disk spool, or
    retried after a commit whose answer was lost) is skipped, found by one look-up of the batch's ids.
    ``unseen=True`` says no row of the batch can be there: this process made them and never tried to write
    them before (the batch writer's first attempt, without Redis); the look-up is left out, a third of a
    small batch's cost (docs/performance.md, "The spend writer and p99")."""
    records = [_cleaned(r) for r in records]
    unique = list({r.call_id: r for r in records}.values())
    keep_rows = not get_config().general_settings.disable_spend_logs
    with transaction.atomic():
        if unseen or not keep_rows:   # without rows there is nothing to look up
            fresh = unique
        else:
            existing = set(SpendLog.objects.filter(call_id__in=[r.call_id for r in unique])
                           .values_list("call_id", flat=True))
            fresh = [r for r in unique if r.call_id not in existing]
        if not fresh:
            return 0
        if keep_rows:
            _write_rows(fresh)
        _add_spend(fresh)
        # Budget alerts read the committed spend, on the alerts thread: nothing more happens here.
        transaction.on_commit(lambda: alerts.spend_written(fresh))
    return len(fresh)


def _write_rows(records: list[SpendRecord]) -> None:
    if connection.vendor == "postgresql":
        _copy_rows(records)
    else:
        _insert_rows(records)
    SpendLogTag.objects.bulk_create([
        SpendLogTag(spend_log_id=r.call_id, tag=tag[:255], spend=r.spend, start_time=r.start_time)
        for r in records for tag in dict.fromkeys(r.request_tags)
    ])


def flush_interval() -> float:
    """Seconds between batched writes: ``general_settings.proxy_batch_write_at``, else
    ``GATEWAY_SPEND_FLUSH_INTERVAL``."""
    return get_config().general_settings.proxy_batch_write_at or settings.GATEWAY_SPEND_FLUSH_INTERVAL


# SpendLog's fields in the order COPY (PostgreSQL) and the INSERT (SQLite) receive them: every concrete field of
# the model, since neither applies a Django default (tests/spend/test_writer.py holds the two together).
COPY_FIELDS = ("call_id", "request_id", "call_type", "status", "api_key", "key_alias", "team_id", "user", "end_user",
               "model", "model_group", "model_id", "custom_llm_provider", "api_base", "prompt_tokens",
               "completion_tokens", "total_tokens", "spend", "start_time", "end_time", "completion_start_time",
               "request_tags", "metadata", "requester_ip_address")


def _json_text(value) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:   # e.g. an integer beyond 64 bits in client-supplied metadata
        return json.dumps(value, default=str)


def _copy_values(r: SpendRecord) -> tuple:
    return (r.call_id, r.request_id, r.call_type, r.status, r.api_key, r.key_alias, r.team_id, r.user, r.end_user,
            r.model, r.model_group, r.model_id, r.custom_llm_provider, r.api_base, r.prompt_tokens,
            r.completion_tokens, r.prompt_tokens + r.completion_tokens, r.spend, r.start_time, r.end_time,
            r.completion_start_time, _json_text(r.request_tags), _json_text(r.metadata), r.requester_ip_address)


def _copy_rows(records: list[SpendRecord]) -> None:
    """PostgreSQL: the rows in one COPY. A row is formatted by psycopg's C code, where ``bulk_create`` builds
    a model instance, prepares every value and quotes it in Python (client-side binding): about five times
    the writer's CPU per row, on a thread that shares the GIL with the event loop (docs/performance.md)."""
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(_copy_statement()) as copy:
            for record in records:
                copy.write_row(_copy_values(record))


@functools.cache
def _copy_statement() -> str:
    return f"COPY {_table_and_columns()} FROM STDIN"


def _table_and_columns() -> str:
    """``table (column, ...)`` of SpendLog in COPY_FIELDS' order, quoted for the connection's database."""
    meta, quote = SpendLog._meta, connection.ops.quote_name
    return f"{quote(meta.db_table)} ({', '.join(quote(meta.get_field(name).column) for name in COPY_FIELDS)})"


def _insert_rows(records: list[SpendRecord]) -> None:
    """SQLite: the rows by multi-row INSERTs of values prepared as Django's SQLite backend stores them
    (datetimes as its UTC text, JSON as text), where ``bulk_create`` also builds a model instance and prepares
    every value of every row in Python: less than half the writer's CPU per row, on the thread that shares the
    GIL with the event loop.
    As few statements as SQLite binds parameters for (``SQLITE_LIMIT_VARIABLE_NUMBER``: a whole batch in one
    statement on current builds; Django's own bound, 999, would make it one per 41 rows), given to SQLite as
    written (``?`` placeholders; Django's cursor would rewrite the statement's ``%s`` on every call). Each
    statement's preparing and its step release the GIL, and a busy event loop then keeps it for a switch
    interval (5 ms): under load a batch's time is mostly those waits, so every statement counts — the reason
    it is not ``executemany`` (a step per row) either (docs/performance.md, "The spend writer on SQLite")."""
    per_statement = _rows_per_insert()
    with connection.cursor() as cursor, connection.wrap_database_errors:
        for start in range(0, len(records), per_statement):
            chunk = records[start:start + per_statement]
            cursor.cursor.execute(_insert_statement(len(chunk)), [value for r in chunk for value in _insert_values(r)])


MAX_ROWS_PER_INSERT = 1000


def _rows_per_insert() -> int:
    """Rows of one INSERT: as many as the connection binds parameters for, at most ``MAX_ROWS_PER_INSERT``."""
    connection.ensure_connection()
    variables = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(MAX_ROWS_PER_INSERT, variables // len(COPY_FIELDS)))


_DATETIMES = tuple(COPY_FIELDS.index(name) for name in ("start_time", "end_time", "completion_start_time"))


def _insert_values(record: SpendRecord) -> list:
    values, when = list(_copy_values(record)), connection.ops.adapt_datetimefield_value
    for index in _DATETIMES:
        values[index] = when(values[index])
    return values


@functools.lru_cache(maxsize=8)
def _insert_statement(rows: int) -> str:
    row = "(" + ", ".join(["?"] * len(COPY_FIELDS)) + ")"
    return f"INSERT INTO {_table_and_columns()} VALUES {', '.join([row] * rows)}"


def _clean(value):
    """Client-controlled text can carry NUL bytes, which PostgreSQL text and JSON cannot store."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


_TEXTS = attrgetter(*(name for name, kind in SpendRecord.__annotations__.items() if kind.startswith("str")))


def _has_nul(record: SpendRecord) -> bool:
    if any(value and "\x00" in value for value in _TEXTS(record)):
        return True
    return any(value and "\\u0000" in _json_text(value) for value in (record.request_tags, record.metadata))


def _cleaned(record: SpendRecord) -> SpendRecord:
    if not _has_nul(record):   # nearly always: the record as it is
        return record
    return SpendRecord(**{name: _clean(getattr(record, name)) for name in SpendRecord.__slots__})


def _add_spend(records: list[SpendRecord]) -> None:
    by_key: dict[str, float] = defaultdict(float)
    by_team: dict[str, float] = defaultdict(float)
    by_user: dict[str, float] = defaultdict(float)
    by_customer: dict[str, float] = defaultdict(float)
    for r in records:
        if not r.spend:
            continue
        if r.api_key:
            by_key[r.api_key] += r.spend
        if r.team_id:
            by_team[r.team_id] += r.spend
        if r.user:
            by_user[r.user] += r.spend
        if r.end_user:
            by_customer[r.end_user] += r.spend
    if by_customer:
        Customer.objects.bulk_create([Customer(user_id=c) for c in sorted(by_customer)], ignore_conflicts=True)
    # Sorted, so that concurrent writers (several workers) lock rows in the same order. One prepared UPDATE per
    # table, its rows in one executemany (pipelined by psycopg: one round trip), rather than a queryset's
    # ``update`` per row, which builds and compiles its query each time: most of a small batch's CPU besides the
    # COPY, once a second at low rates (docs/performance.md). Like ``update``, no model signals.
    with connection.cursor() as cursor:
        for model, amounts in ((VirtualKey, by_key), (Team, by_team), (User, by_user), (Customer, by_customer)):
            if amounts:
                cursor.executemany(_add_spend_statement(model),
                                   [(amount, ident) for ident, amount in sorted(amounts.items())])


@functools.cache
def _add_spend_statement(model) -> str:
    """``UPDATE <table> SET spend = spend + %s WHERE <identifier> = %s`` for the model's identifying column:
    the key's token, the team's id, the user's username, the customer's user id."""
    quote = connection.ops.quote_name
    identifier = {VirtualKey: "token", Team: "team_id", User: "username", Customer: "user_id"}[model]
    spend = quote(model._meta.get_field("spend").column)
    return (f"UPDATE {quote(model._meta.db_table)} SET {spend} = {spend} + %s "
            f"WHERE {quote(model._meta.get_field(identifier).column)} = %s")


def _write_on_writer_thread(records: list[SpendRecord], unseen: bool = False) -> int:
    # The writer thread lives as long as the process: drop a connection the database closed
    # (restart, idle timeout) before using it, as Django does around each request.
    close_old_connections()
    return write_batch_isolating(records, unseen=unseen)


def write_batch_isolating(records: list[SpendRecord], *, unseen: bool = False) -> int:
    """``write_batch``, but a row the database refuses is set aside instead of failing its batch."""
    try:
        return write_batch(records, unseen=unseen)
    except (DataError, IntegrityError):
        # Something in the rows themselves: write them one by one so one bad row cannot hold back
        # the others; only a row that fails on its own is set aside (logged with its call id).
        return sum(_write_alone(record) for record in records)


def _write_alone(record: SpendRecord) -> int:
    try:
        return write_batch([record])
    except (DataError, IntegrityError) as exc:
        logger.error("spend row %s (key %s) cannot be stored and is dropped: %s",
                     record.call_id, record.api_key[:12], exc)
        return 0


class SpendWriter:
    def __init__(self) -> None:
        self._buffer: list[SpendRecord] = []
        # How many rows at the head of the buffer a failed flush may have written (it put them back there):
        # written with the look-up for written ids. (Rows a failed hand-over to the stream gave back need no
        # count: with a journal that ``holds_records`` every direct write looks up.)
        self._uncertain = 0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._spool_pending = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spend-writer")
        self.journal: NullJournal | RedisJournal = NullJournal()
        self._room: asyncio.Event | None = None   # what requests wait on while the backlog is over its bound
        self._failing = False   # the last write failed (the database is down): nobody waits for the writer
        self._room_timed_out = False   # a wait for the current ``_room`` ran out (logged once)

    def add(self, entry: SpendRecord) -> None:
        self._buffer.append(entry)
        if len(self._buffer) > MAX_BUFFERED:
            dropped = len(self._buffer) - MAX_BUFFERED
            del self._buffer[:dropped]
            self._uncertain = max(0, self._uncertain - dropped)
            logger.error("spend buffer full: dropped the %d oldest unwritten spend rows", dropped)
        self._ensure_running()
        # To the stream at once (the loop batches what arrives while it waits); to the database in batches.
        if self._wake is not None and (self.journal.forwarding
                                       or len(self._buffer) >= settings.GATEWAY_SPEND_BATCH_SIZE):
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def backlogged(self) -> bool:
        """More rows wait than ``GATEWAY_SPEND_MAX_BACKLOG``: requests should wait for the writer (``room``)."""
        return len(self._buffer) > settings.GATEWAY_SPEND_MAX_BACKLOG

    async def room(self) -> None:
        """Wait until the writer has brought the backlog down to half of ``GATEWAY_SPEND_MAX_BACKLOG``, at most
        ``ROOM_WAIT`` seconds. Rows come in faster than they are written when the event loop keeps the writer
        thread from the GIL (one busy worker on SQLite): a request that waits here leaves the loop idle, the
        writer catches up, and the rows waiting in memory stay bounded. Nobody waits while writes fail (a
        database outage: rows are kept, up to ``MAX_BUFFERED``), nor where no writer runs on this loop."""
        if (self._failing or self._task is None or self._task.done()
                or self._loop is not asyncio.get_running_loop()):
            return
        if self._room is None:
            self._room, self._room_timed_out = asyncio.Event(), False
            logger.warning("spend writer behind: %d rows wait to be written (GATEWAY_SPEND_MAX_BACKLOG %d); "
                           "requests wait for it", len(self._buffer), settings.GATEWAY_SPEND_MAX_BACKLOG)
        room = self._room
        self._wake.set()
        try:
            await asyncio.wait_for(room.wait(), ROOM_WAIT)
        except TimeoutError:
            if self._room is room and not self._room_timed_out:   # once per episode, not once per request
                self._room_timed_out = True
                logger.warning("spend writer behind: requests waited %gs for it and go on", ROOM_WAIT)

    def _make_room(self) -> None:
        """Let waiting requests go once the backlog is down to half its bound, or writes fail."""
        room = self._room
        if room is not None and (self._failing or self._stopping
                                 or len(self._buffer) <= settings.GATEWAY_SPEND_MAX_BACKLOG // 2):
            self._room = None
            room.set()

    def _ensure_running(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="spend-writer")

    async def _run(self) -> None:
        loop, spool_due = asyncio.get_running_loop(), 0.0
        while not self._stopping:
            metrics.SPEND_ROWS_BUFFERED.set(len(self._buffer))   # what the last round left
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=flush_interval())
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self._forward()
            if not self.journal.forwarding:   # no Redis, or Redis down: to the database directly
                await self.flush(until_empty=False)
                continue
            if self._spool_pending and loop.time() >= spool_due:   # at the database's pace, not the stream's
                spool_due = loop.time() + flush_interval()
                await self._replay_spool()
            await asyncio.sleep(self.journal.interval)   # bounds XADD round trips; records gather meanwhile

    async def _forward(self, *, retry_now: bool = False) -> None:
        """Hand the buffer to the stream; whatever it does not take stays for the database flush."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        taken = False
        try:
            taken = await self.journal.append(batch, retry_now=retry_now)
        except Exception:
            logger.exception("handing %d spend rows to the stream failed; they are written directly", len(batch))
        finally:   # a cancelled or failed hand-over keeps the batch
            if not taken:
                self._buffer[:0] = batch

    def start(self, journal: NullJournal | RedisJournal | None = None) -> None:
        """At server start: replay what an earlier process spooled to disk, and (with Redis) pass spend
        records through the stream and consume it."""
        self._spool_pending = True
        if journal is not None:
            self.journal = journal
            journal.start(self.write)
        self._ensure_running()

    async def write(self, records: list[SpendRecord]) -> int:
        """Write ``records`` now, on the writer thread (the stream consumer's way to the database)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, _write_on_writer_thread, records)

    async def flush(self, *, until_empty: bool = True) -> None:
        """Write everything buffered; on failure keep it for the next attempt. The periodic flush
        (``until_empty=False``) writes the rows buffered when it starts: rows that come in while a batch is
        being written wait for the next round, so that under load they gather into batches instead of
        trickling out in transactions of a few rows each (docs/performance.md, "The spend writer")."""
        if self._spool_pending and not self._buffer:
            await self._replay_spool()
        budget = math.inf if until_empty else len(self._buffer)
        size = settings.GATEWAY_SPEND_BATCH_SIZE
        if len(self._buffer) > BEHIND_AFTER_BATCHES * size:   # behind: fewer, larger transactions
            size *= CATCH_UP_FACTOR
        while self._buffer and budget > 0:
            batch = self._buffer[: min(size, budget)]
            budget -= len(batch)
            del self._buffer[: len(batch)]
            unseen = not self._uncertain and not self.journal.holds_records
            self._uncertain = max(0, self._uncertain - len(batch))
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, _write_on_writer_thread, batch,
                                                                 unseen)
            except Exception:
                logger.exception("writing %d spend rows failed; they stay buffered and are retried", len(batch))
                self._buffer[:0] = batch
                self._uncertain += len(batch)   # the commit may have happened, its answer lost
                self._failing = True
                self._make_room()
                return
            self._failing = False
            self._make_room()

    async def stop(self) -> None:
        """Flush what is left and stop the background task (server shutdown).

        The task is asked to finish, not cancelled: a cancelled flush could lose a batch in flight.
        """
        self._stopping = True
        self._make_room()
        try:
            if self._task is not None and self._loop is asyncio.get_running_loop():
                self._wake.set()
                await self._task
            self._task = None
            # The database first, so that a stopped gateway leaves it up to date; if it is down, the
            # stream (whatever the last attempt said); if that is down too, the disk spool.
            await self.flush()
            await self._forward(retry_now=True)
            await self.journal.stop()
            if self._buffer:  # the database is down: keep the rows on disk for the next start
                path = await asyncio.get_running_loop().run_in_executor(self._executor, spool.spill, self._buffer)
                logger.warning("database unavailable at shutdown: %d spend rows spooled to %s", len(self._buffer), path)
                self._buffer, self._uncertain = [], 0   # the spool's replay looks for written ids
        finally:
            self._stopping = False
            self.journal = NullJournal()

    async def _replay_spool(self) -> None:
        loop = asyncio.get_running_loop()
        while (path := await loop.run_in_executor(self._executor, spool.claim_next)) is not None:
            try:
                records = await loop.run_in_executor(self._executor, spool.load, path)
                written = await loop.run_in_executor(self._executor, _write_on_writer_thread, records)
            except Exception:
                logger.exception("replaying spooled spend rows from %s failed; retried later", path.name)
                await loop.run_in_executor(self._executor, spool.give_back, path)
                return
            path.unlink(missing_ok=True)
            logger.info("replayed %d spooled spend rows (%d new) from %s", len(records), written, path.name)
        self._spool_pending = False


writer = SpendWriter()
