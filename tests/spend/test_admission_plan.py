"""Admission's plan of counters (spend.budgets.plan_for) is made once per set of levels and model group,
and never outlives them: a changed record makes new levels, and so a new plan."""
import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from gateway_project.errors import RateLimitError
from spend.budgets import CallShape, Level, admit, plan_for
from spend.counters import LocalCounters
from spend.prices import Price
from teams.cache import Limits

CALL = CallShape(prompt_bytes=10, max_tokens=5, output_cap=None, model_group="m",
                 price=Price(input_cost_per_token=0.0, output_cost_per_token=0.001))


def key_level(**limits) -> Level:
    return Level(kind="key", ident="digest", label="k", limits=Limits(**limits), model_rpm=2)


def test_the_same_levels_share_one_plan_per_model_group():
    levels = [key_level(rpm_limit=5, max_budget=1.0)]

    assert plan_for(levels, "m") is plan_for(list(levels), "m")
    assert plan_for(levels, "m") is not plan_for(levels, "other")
    assert [b.scope for b in plan_for(levels, "other").buckets] == [
        "key:digest:rpm", "key:digest:model:other:rpm"]


def test_a_changed_record_is_planned_afresh():
    before = key_level(rpm_limit=5, max_budget=1.0, budget_reset_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    after = replace(before, limits=replace(before.limits, rpm_limit=1, budget_epoch=1,
                                           budget_reset_at=before.limits.budget_reset_at + timedelta(days=30)))
    old, new = plan_for([before], "m"), plan_for([after], "m")

    assert [b.capacity for b in new.buckets] == [1, 2] and [b.capacity for b in old.buckets] == [5, 2]
    assert new.lines[0].scope == "key:digest:budget:2030-01-31T00:00:00+00:00:1"
    assert old.lines[0].scope == "key:digest:budget:2030-01-01T00:00:00+00:00:0"


def test_admission_through_a_cached_plan_still_counts_each_call():
    levels, store = [key_level(rpm_limit=2)], LocalCounters()

    async def calls():
        first = await admit(store, levels, CALL)
        second = await admit(store, levels, CALL)
        return first, second

    first, second = asyncio.run(calls())
    assert first.active and second.active and first.key_model_left == (1, None) and second.key_model_left == (0, None)
    with pytest.raises(RateLimitError, match="Limit type: requests"):
        asyncio.run(admit(store, levels, CALL))
