"""The spend-event stream: with Redis, spend records pass through a Redis stream on their way to the
database, so neither a killed process nor a database outage loses one (docs/spend.md, "Nothing lost").

    record() ─► writer buffer ─(every few ms, one XADD per hand-over)─► stream <prefix>spend-events:<db>
    consumer group "spend-writers": any worker of any instance reads (XREADGROUP), takes over a dead
    consumer's unacknowledged entries (XAUTOCLAIM after an idle time), writes a batch with
    ``write_batch`` (one row per call id), and only after the commit acknowledges it (XACK) and trims
    the stream below the oldest unacknowledged entry (XTRIM MINID ~).

An entry is acknowledged only once its rows are committed, and a row is keyed by its call id, so an
entry delivered twice (a consumer died between commit and XACK, an XADD retried after a lost reply,
the writer's fallback wrote it directly) still gives one row, charged once.

``NullJournal`` (no Redis) takes nothing: the writer writes its buffer to the database itself, which
is also what it does while Redis cannot be reached.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from spend import inflight
from spend.inflight import InflightJournal
from spend.records import SpendRecord, decode, encode

logger = logging.getLogger("gateway.spend")

GROUP = "spend-writers"
FIELD = b"r"                  # one entry: the records of one hand-over, one JSON document per line
READ_BLOCK_SECONDS = 1.0      # a consumer's XREADGROUP waits this long for new entries
RETRY_SECONDS = 1.0           # Redis unreachable: the writer tries it again this often
TRIM_EVERY_SECONDS = 1.0
RECORDS_PER_ENTRY = 200

Write = Callable[[list[SpendRecord]], Awaitable[int]]


class NullJournal:
    """No Redis: nothing is taken; the writer keeps its records and writes them to the database."""

    interval = 0.0
    forwarding = False
    holds_records = False   # a record ``append`` did not take is nowhere but in the writer's buffer

    def start(self, write: Write) -> None:
        pass

    async def append(self, records: list[SpendRecord], *, retry_now: bool = False) -> bool:
        return False

    async def readiness(self) -> tuple[bool, str]:
        return True, "disabled"

    async def backlog(self) -> int | None:
        return None

    async def stop(self) -> None:
        pass


class RedisJournal:
    """The stream in Redis (``redis.asyncio``): ``append`` is the writer's side, ``start`` runs this
    process's consumer.

    ``forwarding`` says whether the last XADD went through: while it is false the writer falls back to
    its buffer (database, then disk spool at shutdown) and tries Redis again every RETRY_SECONDS.
    """

    # A hand-over that failed may have put some entries in the stream already: the records it gives back may
    # be written by a consumer too, so the writer's own write of them looks for written ids.
    holds_records = True

    def __init__(self, url: str, key: str, *, interval: float, claim_idle: float, batch_size: int,
                 flush_interval: float, checkpoint_interval: float = 1.0, inflight_timeout: float = 10.0) -> None:
        self.key = key
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.interval = interval
        self.forwarding = True   # until an XADD says otherwise
        self._url = url
        self._claim_idle_ms = int(claim_idle * 1000)
        self._batch_size = batch_size
        # Entries per read: each holds one hand-over (usually a few records, at most RECORDS_PER_ENTRY).
        self._entries_per_read = max(1, batch_size // 5)
        self._flush_interval = flush_interval
        self._retry_at = 0.0
        self._client = _client(url, socket_timeout=2.0)
        self._reader = None
        self._task: asyncio.Task | None = None
        self._consumer: Consumer | None = None
        self._stopping = False
        self._writing = False
        # Streams this process relays, so that its death mid-stream loses none (spend/inflight.py).
        self.inflight = InflightJournal(self._client, base=_inflight_base(key), stream_key=key, stream_field=FIELD,
                                        process=self.consumer, interval=interval,
                                        checkpoint_interval=checkpoint_interval, timeout=inflight_timeout)

    # --- the writer's side: XADD --------------------------------------------------------------------

    async def append(self, records: list[SpendRecord], *, retry_now: bool = False) -> bool:
        """Put ``records`` in the stream; False (nothing certain) when Redis does not take them all."""
        from redis.exceptions import RedisError

        if not self.forwarding and not retry_now and time.monotonic() < self._retry_at:
            return False
        # One entry per hand-over, not per record: a Redis command costs far more CPU here than encoding
        # a record, and the entry is acknowledged as a whole once all its rows are committed.
        pipe = self._client.pipeline(transaction=False)
        for start in range(0, len(records), RECORDS_PER_ENTRY):
            pipe.xadd(self.key, {FIELD: b"\n".join(encode(r) for r in records[start:start + RECORDS_PER_ENTRY])})
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            # Some entries may be in the stream already: the fallback writes them too, and the call id
            # makes the second write a no-op.
            self._unavailable(exc)
            return False
        if not self.forwarding:
            logger.warning("spend-event stream available again")
        self.forwarding = True
        return True

    def _unavailable(self, exc: Exception) -> None:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if self.forwarding:
            logger.warning("spend-event stream unavailable (%s: %s); spend rows go to the database directly "
                           "until Redis is back", type(exc).__name__, exc)
        self.forwarding = False

    async def readiness(self) -> tuple[bool, str]:
        from redis.exceptions import RedisError

        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return False, "unreachable"
        if not self.forwarding:
            self._retry_at = 0.0   # Redis answers: the writer's next attempt goes ahead
        return True, "connected"

    async def backlog(self) -> int | None:
        """Events in the stream not yet written to the database (never read, or read and unacknowledged);
        None when Redis cannot say."""
        from redis.exceptions import RedisError

        try:
            groups = await self._client.xinfo_groups(self.key)
            group = next((g for g in groups if _text(g["name"]) == GROUP), None)
            if group is None or group.get("lag") is None:   # no consumer yet, or lag unknown: count all
                return await self._client.xlen(self.key)
            return int(group["lag"]) + int(group["pending"])
        except (RedisError, OSError):
            return None

    # --- the consumer: XREADGROUP / XAUTOCLAIM → database → XACK → XTRIM -----------------------------

    def start(self, write: Write) -> None:
        self._stopping = False
        self._reader = _client(self._url, socket_timeout=READ_BLOCK_SECONDS + 5.0)
        self._consumer = Consumer(self, write)
        self._task = asyncio.get_running_loop().create_task(self._consumer.run(), name="spend-stream-consumer")
        self.inflight.start()
        inflight.current = self.inflight

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Stop consuming (server shutdown). A batch being written is finished and acknowledged first;
        then what is left in the stream is written for up to ``drain_seconds`` (so a stopped instance
        leaves the database up to date); anything still there waits for the other consumers, or this
        instance's next start."""
        self._stopping = True
        if inflight.current is self.inflight:
            inflight.current = None
        await self.inflight.stop()
        task, self._task = self._task, None
        if task is not None:
            if not self._writing:
                task.cancel()
            try:
                await asyncio.wait_for(task, timeout=30.0)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
            except Exception:
                logger.exception("spend-stream consumer failed while stopping")
            await self._consumer.drain(drain_seconds)
        for client in (self._reader, self._client):
            if client is not None:
                try:
                    await client.aclose()
                except Exception:  # closing a client whose server is gone: nothing left to do
                    pass


class Consumer:
    """One process's member of the consumer group: reads batches, writes them, acknowledges them."""

    def __init__(self, journal: RedisJournal, write: Write) -> None:
        self.journal = journal
        self.redis = journal._reader
        self.write = write
        self.own_pending = True      # entries this consumer read but did not acknowledge: retried first
        self.group_ready = False
        self.next_claim = 0.0
        self.next_trim = 0.0
        self.failures = 0

    async def run(self) -> None:
        from redis.exceptions import RedisError

        journal = self.journal
        while not journal._stopping:
            try:
                if not self.group_ready:
                    await self._create_group()
                entries = await self._next_batch()
                if entries:
                    await self._write(entries)
                await self._trim_if_due()
                self.failures = 0
                if entries and len(entries) < journal._entries_per_read:
                    await asyncio.sleep(journal._flush_interval)   # let the next batch gather
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if "NOGROUP" in str(exc):   # Redis lost its data (restarted without persistence)
                    self.group_ready = False
                self.own_pending = True   # an XACK may not have arrived: those entries are written again
                await self._back_off(f"spend-event stream: Redis unavailable ({type(exc).__name__}: {exc})")
            except Exception as exc:   # the database refused the batch: it stays pending, retried
                self.own_pending = True
                await self._back_off(f"spend-event stream: writing a batch failed ({type(exc).__name__}: "
                                     f"{exc}); it stays in the stream and is retried")

    async def drain(self, seconds: float) -> None:
        """Write what is in the stream now, without waiting for more; stop at the first trouble."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                if not self.group_ready:
                    await self._create_group()
                entries = await self._next_batch(block=False)
                if not entries:
                    return
                await self._write(entries)
        except Exception as exc:   # Redis or the database: the entries stay for another consumer
            logger.warning("spend-event stream: not drained at shutdown (%s: %s); the entries left are "
                           "written by another instance, or this one's next start", type(exc).__name__, exc)

    async def _back_off(self, message: str) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 30 == 0:
            logger.warning(message)
        await asyncio.sleep(min(0.2 * 2 ** min(self.failures, 6), 5.0))

    async def _create_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            # From the stream's start: entries written before the group existed are ours too.
            await self.redis.xgroup_create(self.journal.key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.group_ready = True

    async def _next_batch(self, *, block: bool = True) -> list[tuple[bytes, dict]]:
        journal, count = self.journal, self.journal._entries_per_read
        if self.own_pending:
            entries = _entries(await self.redis.xreadgroup(GROUP, journal.consumer, {journal.key: "0"}, count=count))
            if entries:
                return entries
            self.own_pending = False
        if time.monotonic() >= self.next_claim:
            entries = await self._claim()
            if entries:
                return entries
        return _entries(await self.redis.xreadgroup(GROUP, journal.consumer, {journal.key: ">"}, count=count,
                                                    block=int(READ_BLOCK_SECONDS * 1000) if block else None))

    async def _claim(self) -> list[tuple[bytes, dict]]:
        """Entries another consumer read and left unacknowledged for longer than the claim idle time
        (its process died, or it cannot reach the database either): taken over by this one."""
        journal = self.journal
        reply = await self.redis.xautoclaim(journal.key, GROUP, journal.consumer, journal._claim_idle_ms,
                                            start_id="0-0", count=journal._entries_per_read)
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
        full = len(reply[1]) >= journal._entries_per_read
        self.next_claim = time.monotonic() + (0.0 if full else max(journal._claim_idle_ms / 2000, 1.0))
        if claimed:
            logger.warning("spend-event stream: took over %d entries of a consumer gone quiet", len(claimed))
        if not full:
            await self._forget_idle_consumers()
        return claimed

    async def _forget_idle_consumers(self) -> None:
        # Each process start adds a consumer name; ones with nothing pending and long silent are gone.
        journal = self.journal
        silent_ms = max(journal._claim_idle_ms * 10, 3_600_000)
        for consumer in await self.redis.xinfo_consumers(journal.key, GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > silent_ms:
                await self.redis.xgroup_delconsumer(journal.key, GROUP, consumer["name"])

    async def _write(self, entries: list[tuple[bytes, dict]]) -> None:
        records, ids = [], []
        for entry_id, fields in entries:
            ids.append(entry_id)
            for line in ((fields or {}).get(FIELD) or b"").splitlines():
                try:
                    records.append(decode(line))
                except Exception:
                    logger.error("spend-event stream: entry %s holds a line that is not a spend record; "
                                 "dropped: %.200r", entry_id, line)
        self.journal._writing = True
        try:
            for start in range(0, len(records), self.journal._batch_size):
                await self.write(records[start:start + self.journal._batch_size])
            # Only now: the rows are committed. A crash before this line redelivers the entries,
            # and the call ids make their second write a no-op.
            await self.redis.xack(self.journal.key, GROUP, *ids)
        finally:
            self.journal._writing = False

    async def _trim_if_due(self) -> None:
        """Drop acknowledged entries: everything below both the oldest unacknowledged entry and the
        group's last delivered id (entries above it were never read)."""
        if time.monotonic() < self.next_trim:
            return
        self.next_trim = time.monotonic() + TRIM_EVERY_SECONDS
        key = self.journal.key
        group = next((g for g in await self.redis.xinfo_groups(key) if _text(g["name"]) == GROUP), None)
        if group is None:
            return
        floor = _stream_id(group["last-delivered-id"])
        if group["pending"]:
            oldest = (await self.redis.xpending(key, GROUP))["min"]
            if oldest is not None:
                floor = min(floor, _stream_id(oldest))
        if floor > (0, 0):
            await self.redis.xtrim(key, minid=f"{floor[0]}-{floor[1]}", approximate=True)


def _client(url: str, *, socket_timeout: float):
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # One immediate retry (a pooled connection dropped by a Redis restart); the loops here handle the rest,
    # so a call never sits in redis-py's back-off while the writer has records to place.
    return redis.asyncio.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=2.0,
                                        retry=Retry(NoBackoff(), 1), health_check_interval=30)


def _entries(reply) -> list[tuple[bytes, dict]]:
    """XREADGROUP's reply (RESP2 list or RESP3 map) → [(id, fields)] of the one stream read."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [entries for _, entries in reply]
    return [(entry_id, fields) for entries in streams for entry_id, fields in entries]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream_id(value) -> tuple[int, int]:
    millis, _, seq = _text(value).partition("-")
    return int(millis), int(seq or 0)


def stream_key(settings) -> str:
    """``<prefix>spend-events:<database>``: a stream feeds one ledger. Two deployments that share a Redis
    and a prefix by mistake still never write each other's records into their databases (the database
    name, hashed, tells them apart)."""
    name = str(settings.DATABASES["default"]["NAME"])
    return f"{settings.GATEWAY_REDIS_PREFIX}spend-events:{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def _inflight_base(key: str) -> str:
    """``<prefix>inflight:<database>`` beside the stream ``<prefix>spend-events:<database>``."""
    head, sep, tail = key.rpartition("spend-events")
    return f"{head}inflight{tail}" if sep else f"{key}:inflight"


def journal_for(settings) -> NullJournal | RedisJournal:
    """The stream when REDIS_URL is set; otherwise nothing (the writer's buffer and disk spool)."""
    if not settings.REDIS_URL:
        return NullJournal()
    from spend.writer import flush_interval   # the writer imports this module

    return RedisJournal(settings.REDIS_URL, stream_key(settings),
                        interval=settings.GATEWAY_SPEND_STREAM_INTERVAL,
                        claim_idle=settings.GATEWAY_SPEND_STREAM_CLAIM_IDLE,
                        batch_size=settings.GATEWAY_SPEND_BATCH_SIZE,
                        flush_interval=flush_interval(),
                        checkpoint_interval=settings.GATEWAY_INFLIGHT_CHECKPOINT_INTERVAL,
                        inflight_timeout=settings.GATEWAY_INFLIGHT_TIMEOUT)
