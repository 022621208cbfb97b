"""One behaviour suite for both counter stores: this process's, and Redis (shared by instances)."""
import asyncio
import uuid

import pytest
import redis.asyncio

from spend.counters import Bucket, BudgetLine, LocalCounters, RedisCounters

REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture(params=["local", "redis"])
def make_store(request):
    def make():
        if request.param == "local":
            return LocalCounters()
        return RedisCounters(redis.asyncio.Redis.from_url(REDIS_URL), prefix=f"test:{uuid.uuid4().hex}:")
    return make


def run(coro):
    return asyncio.run(coro)


def line(scope="key:a", limit=100, baseline=0):
    return BudgetLine(scope=scope, limit=limit, baseline=baseline)


def test_a_reservation_counts_against_the_budget_until_settled(make_store):
    async def scenario():
        store = make_store()
        budget = [line(limit=100, baseline=10)]
        assert await store.remaining(budget) == [90]
        assert await store.reserve(budget, 60) is None
        assert await store.remaining(budget) == [30]
        assert await store.reserve(budget, 40) == 0          # would overspend
        await store.settle(budget, 60, 25)
        assert await store.remaining(budget) == [65]
    run(scenario())


def test_reservations_are_all_or_nothing_across_levels(make_store):
    async def scenario():
        store = make_store()
        key, team = line("key:a", 100), line("team:t", 50, baseline=40)
        assert await store.reserve([key, team], 20) == 1      # the team cannot pay
        assert await store.remaining([key, team]) == [100, 10]  # nothing reserved on the key either
    run(scenario())


def test_the_baseline_seeds_a_counter_only_once(make_store):
    async def scenario():
        store = make_store()
        await store.reserve([line(baseline=10)], 5)
        await store.settle([line(baseline=10)], 5, 5)
        assert await store.remaining([line(baseline=0)]) == [85]   # a later, staler snapshot changes nothing
    run(scenario())


def test_concurrent_reservations_never_overspend(make_store):
    async def scenario():
        store = make_store()
        budget = [line(limit=1000)]
        results = await asyncio.gather(*(store.reserve(budget, 100) for _ in range(40)))
        assert results.count(None) == 10
    run(scenario())


def test_a_bucket_admits_its_capacity_then_refuses_with_a_wait(make_store):
    async def scenario():
        store = make_store()
        rpm = [Bucket(scope="key:a:rpm", capacity=3)]
        assert [await store.take(rpm, [1]) for _ in range(3)] == [None, None, None]
        refusal = await store.take(rpm, [1])
        assert refusal.index == 0 and refusal.remaining == 0 and 0 < refusal.retry_after <= 20
    run(scenario())


def test_take_reports_what_each_bucket_has_left(make_store):
    async def scenario():
        store = make_store()
        rpm, tpm = Bucket(scope="key:a:model:m:rpm", capacity=60), Bucket(scope="key:a:model:m:tpm", capacity=1000)
        left: list[float] = []
        assert await store.take([rpm, tpm], [1, 0], left) is None
        # A minute's bucket refills 1/s at most during the call: 59 (or a hair more) requests left.
        assert 59 <= left[0] < 60 and left[1] == 1000
        one, refused = Bucket("key:a:one", capacity=1), []
        assert await store.take([one], [1]) is None
        assert await store.take([one], [1], refused) is not None and refused == []
    run(scenario())


def test_tokens_spent_after_a_call_empty_the_bucket(make_store):
    async def scenario():
        store = make_store()
        tpm = [Bucket(scope="key:a:tpm", capacity=100)]
        assert await store.take(tpm, [0]) is None
        await store.spend_tokens(tpm, 150)
        assert (await store.take(tpm, [0])).index == 0
    run(scenario())


def test_buckets_are_all_or_nothing(make_store):
    async def scenario():
        store = make_store()
        key, team = Bucket("key:a:rpm", 5), Bucket("team:t:rpm", 1)
        assert await store.take([key, team], [1, 1]) is None
        assert (await store.take([key, team], [1, 1])).index == 1
        for _ in range(4):  # the refused attempt took nothing from the key's bucket
            assert await store.take([key], [1]) is None
    run(scenario())


def test_leases_limit_parallel_requests_and_are_released(make_store):
    async def scenario():
        store = make_store()
        assert await store.lease(["key:a:parallel"], [2], "r1") is None
        assert await store.lease(["key:a:parallel"], [2], "r2") is None
        assert await store.lease(["key:a:parallel"], [2], "r3") == 0
        await store.unlease(["key:a:parallel"], "r1")
        assert await store.lease(["key:a:parallel"], [2], "r3") is None
    run(scenario())


def test_local_counter_operations_finish_without_ever_suspending():
    # LocalCounters.never_waits: the pipeline then settles a call inline, without a shielded task of its own,
    # which is safe only if no operation can be interrupted by a cancellation half-way.
    store = LocalCounters()
    budget, bucket = line(limit=1000), Bucket(scope="rpm:a", capacity=10)
    operations = [store.remaining([budget]), store.reserve([budget], 10), store.settle([budget], 10, 4),
                  store.take([bucket], [1]), store.spend_tokens([bucket], 3), store.lease(["p:a"], [2], "l1"),
                  store.unlease(["p:a"], "l1")]
    for operation in operations:
        with pytest.raises(StopIteration):
            operation.send(None)   # finished at the first step: it never yielded to the event loop
    assert LocalCounters.never_waits and not RedisCounters.never_waits
