"""A budget that has run out admits requests again once its period ends and the reset job runs
(time travel: the reset moment is moved into the past)."""
import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway_project.errors import BudgetExceededError
from keys.cache import KeyRecord
from keys.models import VirtualKey
from keys.services import key_generate
from spend.budgets import CallShape, Level, admit, finish
from spend.counters import LocalCounters
from spend.prices import Price
from spend.services import budgets_reset

pytestmark = pytest.mark.django_db

CALL = CallShape(prompt_bytes=0, max_tokens=5, output_cap=None, model_group="m",
                 price=Price(input_cost_per_token=0.0, output_cost_per_token=0.001))


def level(token: str) -> Level:
    record = KeyRecord.from_model(VirtualKey.objects.select_related("user").get(token=token))
    return Level(kind="key", ident=record.token, label=record.key_name, limits=record.limits)


def spend_once(store, token: str) -> None:
    levels = [level(token)]  # the snapshot the proxy would read

    async def call():
        admission = await admit(store, levels, CALL)
        await finish(store, admission, cost=0.005, tokens=5)
    asyncio.run(call())


def test_an_exhausted_budget_admits_again_after_its_reset():
    key, _ = key_generate(actor=None, max_budget=0.005, budget_duration="30d")
    store = LocalCounters()
    spend_once(store, key.token)
    VirtualKey.objects.filter(pk=key.pk).update(spend=0.005)  # what the spend writer records
    with pytest.raises(BudgetExceededError):
        spend_once(store, key.token)

    VirtualKey.objects.filter(pk=key.pk).update(budget_reset_at=timezone.now() - timedelta(seconds=1))
    assert budgets_reset(now=timezone.now()) == 1

    key.refresh_from_db()
    assert key.spend == 0 and key.budget_reset_at > timezone.now() + timedelta(days=29)
    spend_once(store, key.token)  # a new period: admitted
