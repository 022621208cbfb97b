"""Budget resets: exactly the keys, teams, users and customers whose period ended start a new one."""
from __future__ import annotations

from datetime import timedelta

import pytest

from keys.cache import KeyRecord, key_cache
from keys.models import VirtualKey
from spend import services
from teams.models import Customer, Team, User
from tests.tasks.conftest import NOW

pytestmark = pytest.mark.django_db
PAST, FUTURE = NOW - timedelta(minutes=1), NOW + timedelta(minutes=1)


def key(token: str, **fields) -> VirtualKey:
    return VirtualKey.objects.create(token=token, key_name=f"sk-...{token[-4:]}", **fields)


def test_resets_exactly_the_budgets_whose_period_ended():
    due = [key("a" * 64, spend=3.0, max_budget=5, budget_duration="1d", budget_reset_at=PAST),
           Team.objects.create(team_id="t-due", spend=7.0, budget_duration="30d", budget_reset_at=NOW),
           User.objects.create(username="ann", spend=1.0, budget_duration="1h", budget_reset_at=PAST),
           Customer.objects.create(user_id="c-due", spend=2.0, budget_duration="1mo", budget_reset_at=PAST)]
    not_due = [key("b" * 64, spend=3.0, budget_duration="1d", budget_reset_at=FUTURE),
               key("c" * 64, spend=3.0),  # no budget period at all
               Team.objects.create(team_id="t-later", spend=7.0, budget_duration="30d", budget_reset_at=FUTURE)]

    assert services.budgets_reset(now=NOW) == 4

    for row, duration in zip(due, ("1d", "30d", "1h", "1mo")):
        row.refresh_from_db()
        expected_next = {"1d": NOW + timedelta(days=1), "30d": NOW + timedelta(days=30),
                         "1h": NOW + timedelta(hours=1), "1mo": NOW.replace(month=4)}[duration]
        assert (row.spend, row.budget_reset_at) == (0.0, expected_next)
    for row in not_due:
        before = (row.spend, row.budget_reset_at)
        row.refresh_from_db()
        assert (row.spend, row.budget_reset_at) == before


def test_a_reset_starts_a_new_budget_epoch():
    row = key("d" * 64, spend=3.0, budget_duration="1d", budget_reset_at=PAST)

    services.budgets_reset(now=NOW)

    row.refresh_from_db()
    assert row.budget_epoch == 1


def test_running_twice_resets_once():
    key("e" * 64, spend=3.0, budget_duration="1d", budget_reset_at=PAST)

    assert [services.budgets_reset(now=NOW), services.budgets_reset(now=NOW)] == [1, 0]


def test_the_proxys_cached_snapshot_is_dropped(django_capture_on_commit_callbacks):
    row = key("f" * 64, spend=3.0, max_budget=5, budget_duration="1d", budget_reset_at=PAST)
    key_cache._store(row.token, KeyRecord.from_model(row))

    with django_capture_on_commit_callbacks(execute=True):
        services.budgets_reset(now=NOW)

    assert row.token not in key_cache._entries
