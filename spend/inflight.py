"""The in-flight journal: the streams a gateway process is relaying, kept in Redis, so that a process killed
mid-stream (SIGKILL, the OOM killer) still leaves one spend row per stream (docs/spend.md, "Nothing lost").

A stream's record is made when its relay ends; a process that dies first never makes it. With Redis
configured, each process therefore keeps, per streamed call, an "open" entry that already holds the
failure record the call would get (call id, key, team, user, model, deployment, estimated prompt tokens,
start time), its price and its budget reservation, plus a checkpoint of the completion tokens streamed:

    <prefix>inflight:<db>:calls:<process>     hash   call id → open entry
    <prefix>inflight:<db>:progress:<process>  hash   call id → "<completion tokens> <epoch ms>"
    <prefix>inflight:<db>:alive:<process>     string expires GATEWAY_INFLIGHT_TIMEOUT s after the last write
    <prefix>inflight:<db>:procs               set    processes that may have open entries

Nothing is sent on the response path: ``open`` and the checkpoints are written by this process's loop
in one transaction (MULTI/EXEC) a few milliseconds after the stream starts
(GATEWAY_SPEND_STREAM_INTERVAL), then at most every GATEWAY_INFLIGHT_CHECKPOINT_INTERVAL s per stream,
with the heartbeat (``alive``) in the same transaction.

When the relay ends (finished, failed, cut by the client or by a graceful shutdown) ``close`` removes the
entry, atomically with asking whether another process recorded it already (below): a stream that ended
before its entry was handed over costs no round trip at all.

Every process also sweeps: a process whose heartbeat expired is dead, and each of its open entries is an
orphan. One script (atomic) takes an orphan out of the hash, marks it ``swept:<call id>`` and adds its
record to the spend-event stream: status failure, error 499 "gateway process died mid-stream",
``metadata.partial``, the last checkpoint's completion tokens, costed at the deployment's price. The stream
writes it (one row per call id) and the sweeper settles the budget counters it had reserved. Either the
sweep or the close removes the entry first, never both, so a call is recorded once: a close that finds
``swept:<call id>`` neither records nor settles again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from gateway_project import draining
from spend.cost import cost
from spend.prices import Price
from spend.records import SpendRecord, decode, encode

logger = logging.getLogger("gateway.spend")

SWEPT_TTL = 24 * 3600   # how long a swept call's marker stays (a close can only come while its process lives)
ORPHAN_ERROR = "gateway process died mid-stream"

# KEYS: calls, progress, swept marker. ARGV: call id. Returns 1 when a sweep recorded the call already.
_CLOSE = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('EXISTS', KEYS[3])
"""

# KEYS: alive, calls, progress, procs, spend-event stream.
# ARGV: swept-marker prefix, its ttl, process, stream field, then (call id, record) pairs.
# Returns the call ids this sweep recorded (none while the process's heartbeat is alive).
_SWEEP = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local won = {}
for i = 5, #ARGV, 2 do
  if redis.call('HDEL', KEYS[2], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('SET', ARGV[1] .. ARGV[i], '1', 'EX', ARGV[2])
    if ARGV[i + 1] ~= '' then redis.call('XADD', KEYS[5], '*', ARGV[4], ARGV[i + 1]) end
    won[#won + 1] = ARGV[i]
  end
end
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[3])
  redis.call('DEL', KEYS[3])
end
return won
"""


class OpenCall:
    """One stream being relayed. The relay sets ``completion_tokens`` as chunks pass (a plain attribute:
    the loop reads it at checkpoint time)."""

    __slots__ = ("journal", "call_id", "payload", "completion_tokens", "checkpointed", "checkpoint_at",
                 "sent", "stored")

    def __init__(self, journal: InflightJournal, call_id: str, payload: bytes) -> None:
        self.journal = journal
        self.call_id = call_id
        self.payload = payload
        self.completion_tokens = 0
        self.checkpointed = 0
        self.checkpoint_at = 0.0
        self.sent = False      # a transaction carrying the entry was attempted (it may be in Redis)
        self.stored = False    # ... and confirmed

    async def close(self) -> bool:
        """The relay ended: True when this process is to record the call, False when a sweep did."""
        return await self.journal.close(self)


def payload(record: SpendRecord, price: Price | None, admission: Any) -> bytes:
    """An open entry: the failure record, the price to cost it, and the budget reservation to settle."""
    values: dict[str, Any] = {"p": None if price is None else [price.input_cost_per_token, price.output_cost_per_token,
                                                               price.cache_read_input_token_cost]}
    if admission is not None and admission.active:
        values["a"] = {"lines": [[line.scope, line.limit, line.baseline] for line in admission.lines],
                       "reserved": admission.reserved,
                       "buckets": [[b.scope, b.capacity, b.period] for b in admission.token_buckets],
                       "leases": admission.lease_scopes, "lease_id": admission.lease_id}
    return orjson.dumps(values)[:-1] + b',"r":' + encode(record) + b"}"


def orphan_record(entry: bytes | str, progress: bytes | str | None, *,
                  now: datetime | None = None) -> tuple[SpendRecord, dict | None]:
    """The record of a call whose process died: the open entry's, with the last checkpoint's tokens."""
    values = orjson.loads(entry)
    record = decode(orjson.dumps(values["r"]))
    at = None
    if progress:
        tokens, _, millis = _text(progress).partition(" ")
        record.completion_tokens = max(record.completion_tokens, int(tokens))
        at = datetime.fromtimestamp(int(millis) / 1000, timezone.utc) if millis else None
    record.end_time = at or record.completion_start_time or record.start_time
    price = values.get("p")
    spend = cost(Price(*price) if price else None, prompt_tokens=record.prompt_tokens,
                 completion_tokens=record.completion_tokens)
    record.spend = spend
    if spend is None:
        record.metadata["cost_unknown"] = True
    record.metadata["orphan_recorded_at"] = (now or datetime.now(timezone.utc)).isoformat()
    return record, values.get("a")


class InflightJournal:
    """This process's open streams in Redis (``client``: a ``redis.asyncio.Redis``), and the sweep of dead
    processes' ones into the spend-event stream ``stream_key``."""

    def __init__(self, client, *, base: str, stream_key: str, stream_field: bytes, process: str,
                 interval: float, checkpoint_interval: float, timeout: float) -> None:
        self.process = process
        self.base = base
        self.stream_key = stream_key
        self.interval = interval
        self.checkpoint_interval = checkpoint_interval
        self.timeout = timeout
        self.sweep_interval = max(0.5, min(timeout / 2, 5.0))
        self._field = stream_field
        self._client = client
        self._close_script = client.register_script(_CLOSE)
        self._sweep_script = client.register_script(_SWEEP)
        self._open: dict[str, OpenCall] = {}
        self._deletes: list[str] = []          # closes that could not reach Redis: removed with the next write
        self._heartbeat_due = 0.0
        self._sweep_due = 0.0
        self._in_flight: set[str] = set()      # entries in the transaction being executed
        self._written = asyncio.Event()        # set whenever no transaction is being executed
        self._written.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._failures = 0
        self._registered = False               # this process wrote to the journal since it started
        self._reachable = True                 # the last transaction went through

    def key(self, kind: str, process: str | None = None) -> str:
        return f"{self.base}:{kind}:{process or self.process}"

    @property
    def procs_key(self) -> str:
        return f"{self.base}:procs"

    # --- the relay's side ----------------------------------------------------------------------------

    def open(self, call_id: str, entry: bytes) -> OpenCall:
        call = OpenCall(self, call_id, entry)
        self._open[call_id] = call
        self._wake.set()
        return call

    async def close(self, call: OpenCall) -> bool:
        from redis.exceptions import RedisError

        self._open.pop(call.call_id, None)   # no later transaction carries it
        if not call.sent:
            return True    # never handed over: nobody else can know of it
        while call.call_id in self._in_flight:
            await self._written.wait()   # its HSET must not land after the HDEL below
        if not self._reachable:   # the last transaction failed: no waiting on a Redis that is down
            self._deletes.append(call.call_id)
            return True
        try:
            swept = await self._close_script(keys=[self.key("calls"), self.key("progress"),
                                                   f"{self.base}:swept:{call.call_id}"], args=[call.call_id])
        except (RedisError, OSError):
            self._deletes.append(call.call_id)
            return True
        if swept:
            logger.warning("stream %s ended after another instance had recorded it as an orphan (this process "
                           "was silent for over %.0f s): not recorded twice", call.call_id, self.timeout)
            return False
        return True

    # --- the loop: hand-over, checkpoints, heartbeat, sweep ---------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._wake, self._written = asyncio.Event(), asyncio.Event()
        self._written.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="inflight-journal")

    async def stop(self) -> None:
        """At shutdown, after the relays unwound: calls still open (they did not) are left to the sweep of
        the other instances at once, by removing the heartbeat."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        # A sweep cut short by the cancel above: its recorded orphans still get settled.
        await draining.wait_closing(5)
        if not self._registered:
            return
        try:
            await self._client.delete(self.key("alive"))
            await self._sweep_script(keys=[self.key("alive"), self.key("calls"), self.key("progress"),
                                           self.procs_key, self.stream_key],
                                     args=[f"{self.base}:swept:", SWEPT_TTL, self.process, self._field])
        except Exception:   # Redis is gone: the entries (if any) wait for a sweep
            pass

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.checkpoint_interval, self.sweep_interval))
            except asyncio.TimeoutError:
                pass
            try:
                if self._wake.is_set():
                    self._wake.clear()
                    await asyncio.sleep(self.interval)   # streams starting meanwhile share the transaction
                await self.write()
                if time.monotonic() >= self._sweep_due:
                    self._sweep_due = time.monotonic() + self.sweep_interval
                    await self.sweep()
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._failures += 1
                if self._failures == 1 or self._failures % 60 == 0:
                    logger.warning("in-flight journal: Redis unavailable (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(min(self.checkpoint_interval, 1.0))
            except Exception:
                logger.exception("in-flight journal: a pass failed")
                await asyncio.sleep(min(self.checkpoint_interval, 1.0))

    async def write(self) -> None:
        """New entries, due checkpoints and the heartbeat, in one transaction."""
        now = time.monotonic()
        calls = list(self._open.values())
        new = [c for c in calls if not c.stored]
        due = [c for c in calls if c.stored and c.completion_tokens != c.checkpointed
               and now - c.checkpoint_at >= self.checkpoint_interval]
        if not (new or due or self._deletes or (calls and now >= self._heartbeat_due)):
            return
        millis = int(time.time() * 1000)
        progress = {c.call_id: f"{c.completion_tokens} {millis}" for c in (*new, *due) if c.completion_tokens}
        deletes = list(self._deletes)
        pipe = self._client.pipeline(transaction=True)
        # The heartbeat first: a sweep never sees these entries without it.
        pipe.set(self.key("alive"), b"1", px=max(1, int(self.timeout * 1000)))
        pipe.sadd(self.procs_key, self.process)
        if new:
            pipe.hset(self.key("calls"), mapping={c.call_id: c.payload for c in new})
        if progress:
            pipe.hset(self.key("progress"), mapping=progress)
        if deletes:
            pipe.hdel(self.key("calls"), *deletes)
            pipe.hdel(self.key("progress"), *deletes)
        for call in new:
            call.sent = True   # from now on its close asks Redis (a failed EXEC may still have applied)
        self._registered = True
        self._in_flight = {c.call_id for c in (*new, *due)}
        self._written.clear()
        try:
            await pipe.execute()
        except BaseException:
            self._reachable = False
            raise
        finally:
            self._in_flight = set()
            self._written.set()
        self._reachable = True
        for call in new:
            call.stored = True
        for call in (*new, *due):
            call.checkpointed, call.checkpoint_at = call.completion_tokens, now
        del self._deletes[:len(deletes)]
        self._heartbeat_due = now + self.checkpoint_interval

    async def sweep(self) -> int:
        """Record the open calls of processes whose heartbeat expired; return how many this sweep took."""
        procs = [p for p in map(_text, await self._client.smembers(self.procs_key)) if p != self.process]
        if not procs:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for proc in procs:
            pipe.exists(self.key("alive", proc))
        taken = 0
        for proc, alive in zip(procs, await pipe.execute()):
            if not alive:
                taken += await self._sweep_process(proc)
        return taken

    async def _sweep_process(self, proc: str) -> int:
        entries = await self._client.hgetall(self.key("calls", proc))
        progress = await self._client.hgetall(self.key("progress", proc))
        args: list[Any] = [f"{self.base}:swept:", SWEPT_TTL, proc, self._field]
        orphans: dict[str, tuple[SpendRecord, dict | None]] = {}
        for raw_id, entry in entries.items():
            call_id = _text(raw_id)
            try:
                orphans[call_id] = orphan_record(entry, progress.get(raw_id))
                args += [call_id, encode(orphans[call_id][0])]
            except Exception:   # an entry this version cannot read: dropped, loudly, rather than retried forever
                logger.exception("in-flight journal: the open entry of call %s cannot be read; dropped", call_id)
                args += [call_id, b""]
        won = [_text(c) for c in await self._sweep_script(
            keys=[self.key("alive", proc), self.key("calls", proc), self.key("progress", proc), self.procs_key,
                  self.stream_key], args=args)]
        taken = [orphans[c] for c in won if c in orphans]
        if taken:
            logger.warning("in-flight journal: process %s died with %d streams in flight; recorded as failed "
                           "(partial) calls", proc, len(taken))
            # Their records are in the stream now: settling their reservations must not be cut short by this
            # loop's cancellation at shutdown (``stop`` waits for it), or they would stay held for good.
            await draining.to_the_end(_settle_all(taken))
        return len(taken)


async def _settle_all(taken: list[tuple[SpendRecord, dict | None]]) -> None:
    for record, admission in taken:
        await _settle(record, admission)


async def _settle(record: SpendRecord, state: dict | None) -> None:
    """Turn an orphan's budget reservation into its cost, as the relay would have (``admission.settle_call``)."""
    if not state:
        return
    from proxy.runtime import get_runtime   # here: the proxy imports this module
    from spend.budgets import Admission, finish
    from spend.counters import Bucket, BudgetLine

    admission = Admission(lines=[BudgetLine(*line) for line in state.get("lines") or ()],
                          reserved=int(state.get("reserved") or 0),
                          token_buckets=[Bucket(*bucket) for bucket in state.get("buckets") or ()],
                          lease_scopes=list(state.get("leases") or ()), lease_id=state.get("lease_id") or "",
                          active=True)
    try:
        await finish(get_runtime().counters, admission, cost=record.spend or 0.0,
                     tokens=record.prompt_tokens + record.completion_tokens)
    except Exception:
        logger.exception("in-flight journal: settling the counters of orphan %s failed", record.call_id)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


current: InflightJournal | None = None   # this process's journal, with Redis configured
