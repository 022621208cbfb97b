"""Shared counters for admission: budget reservations, token buckets, parallel-request leases.

Two implementations of one interface: ``RedisCounters`` (atomic Lua scripts, shared by every
instance and worker) when ``REDIS_URL`` is set, ``LocalCounters`` (this process only) otherwise.
Money is counted in integer nano-dollars, so sums stay exact.

Budget counters are keyed by budget period (the level's ``budget_reset_at``): when a budget resets,
its next period starts a fresh counter, seeded from the database's spend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

NANO = 1_000_000_000
COUNTER_TTL = 24 * 3600          # idle budget counters are dropped, then re-seeded from the database
LEASE_TTL = 15 * 60              # a parallel-request lease no one released (crash) expires after this


class CountersUnavailable(Exception):
    """The shared counters (Redis) cannot be reached."""


def to_nano(usd: float) -> int:
    return int(round(usd * NANO))


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One budget a request must fit in: ``scope`` identifies level and period."""

    scope: str
    limit: int        # nano-USD
    baseline: int     # the database's spend when the counter is first seeded


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``capacity / period`` per second."""

    scope: str
    capacity: int
    period: float = 60.0

    @property
    def rate(self) -> float:
        return self.capacity / self.period


@dataclass(frozen=True, slots=True)
class BucketRefusal:
    index: int
    retry_after: float
    remaining: int


class CounterStore(Protocol):
    # True when no operation ever suspends (in-process counters): a caller's cancellation cannot cut one short.
    never_waits: bool

    async def remaining(self, lines: list[BudgetLine]) -> list[int]:
        """nano-USD left in each budget (limit − spent − reserved)."""

    async def reserve(self, lines: list[BudgetLine], amount: int) -> int | None:
        """Reserve ``amount`` in every budget, or none: the index of the first that cannot pay, or None."""

    async def settle(self, lines: list[BudgetLine], reserved: int, actual: int) -> None:
        """Replace a reservation by the actual cost."""

    async def take(self, buckets: list[Bucket], costs: list[int],
                   left: list[float] | None = None) -> BucketRefusal | None:
        """Take ``costs`` from every bucket, or none; a cost of 0 only requires a non-empty bucket.
        When taken and ``left`` is given, it receives each bucket's level afterwards."""

    async def spend_tokens(self, buckets: list[Bucket], tokens: int) -> None:
        """Charge used tokens to buckets after the call (may go below zero)."""

    async def lease(self, scopes: list[str], limits: list[int], lease_id: str) -> int | None:
        """Hold one of ``limits[i]`` slots in every scope, or none; the index of a full one, or None."""

    async def unlease(self, scopes: list[str], lease_id: str) -> None:
        ...


class LocalCounters:
    """One process's counters. Operations never await, so they are atomic on the event loop."""

    never_waits = True

    def __init__(self) -> None:
        self._spent: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}   # scope → (tokens, updated at)
        self._leases: dict[str, dict[str, float]] = {}

    def _left(self, line: BudgetLine) -> int:
        spent = self._spent.setdefault(line.scope, line.baseline)
        return line.limit - spent - self._reserved.get(line.scope, 0)

    async def remaining(self, lines: list[BudgetLine]) -> list[int]:
        return [self._left(line) for line in lines]

    async def reserve(self, lines: list[BudgetLine], amount: int) -> int | None:
        for index, line in enumerate(lines):
            if self._left(line) < amount or self._left(line) <= 0:
                return index
        for line in lines:
            self._reserved[line.scope] = self._reserved.get(line.scope, 0) + amount
        return None

    async def settle(self, lines: list[BudgetLine], reserved: int, actual: int) -> None:
        for line in lines:
            self._reserved[line.scope] = self._reserved.get(line.scope, 0) - reserved
            self._spent[line.scope] = self._spent.setdefault(line.scope, line.baseline) + actual

    def _level(self, bucket: Bucket, now: float) -> float:
        tokens, updated = self._buckets.get(bucket.scope, (float(bucket.capacity), now))
        return min(float(bucket.capacity), tokens + (now - updated) * bucket.rate)

    async def take(self, buckets: list[Bucket], costs: list[int],
                   left: list[float] | None = None) -> BucketRefusal | None:
        now = time.monotonic()
        levels = [self._level(bucket, now) for bucket in buckets]
        for index, (bucket, level, cost) in enumerate(zip(buckets, levels, costs)):
            need = max(cost, 1)
            if level < need:
                return BucketRefusal(index, (need - level) / bucket.rate, max(0, int(level)))
        for bucket, level, cost in zip(buckets, levels, costs):
            self._buckets[bucket.scope] = (level - cost, now)
        if left is not None:
            left.extend(level - cost for level, cost in zip(levels, costs))
        return None

    async def spend_tokens(self, buckets: list[Bucket], tokens: int) -> None:
        now = time.monotonic()
        for bucket in buckets:
            self._buckets[bucket.scope] = (self._level(bucket, now) - tokens, now)

    async def lease(self, scopes: list[str], limits: list[int], lease_id: str) -> int | None:
        now = time.monotonic()
        for index, (scope, limit) in enumerate(zip(scopes, limits)):
            held = self._leases.setdefault(scope, {})
            for stale in [k for k, at in held.items() if at < now - LEASE_TTL]:
                del held[stale]
            if len(held) >= limit:
                return index
        for scope in scopes:
            self._leases[scope][lease_id] = now
        return None

    async def unlease(self, scopes: list[str], lease_id: str) -> None:
        for scope in scopes:
            self._leases.get(scope, {}).pop(lease_id, None)


# --- Redis ------------------------------------------------------------------------------------------
# Every script checks all levels first and changes them only if every level agrees: a request is
# admitted everywhere or nowhere, however many instances race.

_REMAINING = """
local out = {}
for i = 1, #KEYS / 2 do
  local limit, baseline = tonumber(ARGV[2 * i - 1]), ARGV[2 * i]
  redis.call('SET', KEYS[2 * i - 1], baseline, 'NX', 'EX', %(ttl)d)
  local spent = tonumber(redis.call('GET', KEYS[2 * i - 1]))
  local reserved = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  out[i] = limit - spent - reserved
end
return out
""" % {"ttl": COUNTER_TTL}

_RESERVE = """
local amount = tonumber(ARGV[1])
local n = #KEYS / 2
for i = 1, n do
  local limit, baseline = tonumber(ARGV[2 * i]), ARGV[2 * i + 1]
  redis.call('SET', KEYS[2 * i - 1], baseline, 'NX', 'EX', %(ttl)d)
  local left = limit - tonumber(redis.call('GET', KEYS[2 * i - 1])) - tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if left < amount or left <= 0 then return i end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[2 * i], amount)
  redis.call('EXPIRE', KEYS[2 * i], %(ttl)d)
  redis.call('EXPIRE', KEYS[2 * i - 1], %(ttl)d)
end
return 0
""" % {"ttl": COUNTER_TTL}

_SETTLE = """
local reserved, actual = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  redis.call('SET', KEYS[2 * i - 1], ARGV[2 + i], 'NX', 'EX', %(ttl)d)
  redis.call('INCRBY', KEYS[2 * i - 1], actual)
  redis.call('DECRBY', KEYS[2 * i], reserved)
end
return 0
""" % {"ttl": COUNTER_TTL}

_TAKE = """
local now = tonumber(redis.call('TIME')[1]) + tonumber(redis.call('TIME')[2]) / 1e6
local levels = {}
for i = 1, #KEYS do
  local capacity, rate, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  local level = math.min(capacity, tokens + (now - at) * rate)
  local need = math.max(cost, 1)
  if level < need then return {i, tostring((need - level) / rate), math.max(0, math.floor(level))} end
  levels[i] = level
end
local out = {0}
for i = 1, #KEYS do
  local capacity, rate, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - cost), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(capacity / rate) + 60)
  out[i + 1] = tostring(levels[i] - cost)
end
return out
"""

_SPEND_TOKENS = """
local now = tonumber(redis.call('TIME')[1]) + tonumber(redis.call('TIME')[2]) / 1e6
local used = tonumber(ARGV[1])
for i = 1, #KEYS do
  local capacity, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  local level = math.min(capacity, tokens + (now - at) * rate)
  redis.call('HSET', KEYS[i], 'tokens', tostring(level - used), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(capacity / rate) + 60)
end
return 0
"""

_LEASE = """
local now = tonumber(redis.call('TIME')[1])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - %(ttl)d)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[i + 1]) then return i end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('EXPIRE', KEYS[i], %(ttl)d)
end
return 0
""" % {"ttl": LEASE_TTL}


def _unavailable_on_redis_errors(method):
    """Redis trouble (down, timeout, failover) surfaces as CountersUnavailable, nothing else."""
    import functools

    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            # Imported here, not at start-up: without REDIS_URL the worker never loads redis (about 6 MB).
            from redis.exceptions import RedisError

            if isinstance(exc, (RedisError, OSError)):
                raise CountersUnavailable(str(exc)) from exc
            raise

    return wrapper


class RedisCounters:
    """Counters in Redis, shared by every instance. ``client`` is a ``redis.asyncio.Redis``."""

    never_waits = False

    def __init__(self, client, prefix: str = "gateway:") -> None:
        self._prefix = prefix
        self._remaining = client.register_script(_REMAINING)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._take = client.register_script(_TAKE)
        self._spend_tokens = client.register_script(_SPEND_TOKENS)
        self._lease = client.register_script(_LEASE)
        self._client = client

    def _budget_keys(self, lines: list[BudgetLine]) -> list[str]:
        return [key for line in lines for key in (f"{self._prefix}spent:{line.scope}",
                                                  f"{self._prefix}reserved:{line.scope}")]

    @_unavailable_on_redis_errors
    async def remaining(self, lines: list[BudgetLine]) -> list[int]:
        args = [v for line in lines for v in (line.limit, line.baseline)]
        return [int(v) for v in await self._remaining(keys=self._budget_keys(lines), args=args)]

    @_unavailable_on_redis_errors
    async def reserve(self, lines: list[BudgetLine], amount: int) -> int | None:
        args = [amount] + [v for line in lines for v in (line.limit, line.baseline)]
        failed = int(await self._reserve(keys=self._budget_keys(lines), args=args))
        return failed - 1 if failed else None

    @_unavailable_on_redis_errors
    async def settle(self, lines: list[BudgetLine], reserved: int, actual: int) -> None:
        await self._settle(keys=self._budget_keys(lines), args=[reserved, actual] + [l.baseline for l in lines])

    @_unavailable_on_redis_errors
    async def take(self, buckets: list[Bucket], costs: list[int],
                   left: list[float] | None = None) -> BucketRefusal | None:
        args = [v for b, cost in zip(buckets, costs) for v in (b.capacity, repr(b.rate), cost)]
        result = await self._take(keys=[f"{self._prefix}bucket:{b.scope}" for b in buckets], args=args)
        if int(result[0]) == 0:
            if left is not None:
                left.extend(float(level) for level in result[1:])
            return None
        return BucketRefusal(int(result[0]) - 1, float(result[1]), int(result[2]))

    @_unavailable_on_redis_errors
    async def spend_tokens(self, buckets: list[Bucket], tokens: int) -> None:
        args = [tokens] + [v for b in buckets for v in (b.capacity, repr(b.rate))]
        await self._spend_tokens(keys=[f"{self._prefix}bucket:{b.scope}" for b in buckets], args=args)

    @_unavailable_on_redis_errors
    async def lease(self, scopes: list[str], limits: list[int], lease_id: str) -> int | None:
        failed = int(await self._lease(keys=[f"{self._prefix}lease:{s}" for s in scopes], args=[lease_id, *limits]))
        return failed - 1 if failed else None

    @_unavailable_on_redis_errors
    async def unlease(self, scopes: list[str], lease_id: str) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.zrem(f"{self._prefix}lease:{scope}", lease_id)
            await pipe.execute()
