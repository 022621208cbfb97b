"""Retention: spend logs older than the period go, in batches; everything newer stays."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from spend import services, tasks
from spend.models import SpendLog, SpendLogTag
from tests.tasks.conftest import NOW, spend_log

pytestmark = pytest.mark.django_db
CUTOFF = NOW - timedelta(days=30)


def test_deletes_exactly_the_logs_older_than_the_cutoff():
    old = [spend_log(age=timedelta(days=d)).call_id for d in (31, 45, 400)]
    kept = [spend_log(age=age).call_id for age in (timedelta(days=29), timedelta(days=30) - timedelta(seconds=1),
                                                    timedelta(0))]
    at_cutoff = spend_log(age=timedelta(days=30)).call_id  # exactly the period old: not older, kept

    deleted = services.spend_logs_prune(older_than=CUTOFF)

    assert deleted == len(old)
    assert set(SpendLog.objects.values_list("call_id", flat=True)) == {*kept, at_cutoff}


def test_tag_rows_go_with_their_logs():
    spend_log(age=timedelta(days=40), tags=("app-a", "app-b"))
    kept = spend_log(age=timedelta(days=1), tags=("app-a",))

    services.spend_logs_prune(older_than=CUTOFF)

    assert list(SpendLogTag.objects.values_list("spend_log_id", "tag")) == [(kept.call_id, "app-a")]


def test_deletes_in_batches_of_the_given_size():
    for day in range(31, 38):
        spend_log(age=timedelta(days=day), tags=("t",))
    spend_log(age=timedelta(days=2))

    with CaptureQueriesContext(connection) as queries:
        deleted = services.spend_logs_prune(older_than=CUTOFF, batch_size=3)

    log_deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "spend_spendlog"')]
    assert deleted == 7 and len(log_deletes) == 3  # 3 + 3 + 1
    assert SpendLog.objects.count() == 1


def test_nothing_old_deletes_nothing():
    spend_log(age=timedelta(days=1))

    assert services.spend_logs_prune(older_than=CUTOFF) == 0
    assert SpendLog.objects.count() == 1


def test_the_task_uses_the_configured_period(general_settings):
    general_settings(maximum_spend_logs_retention_period="7d")
    spend_log(age=timedelta(days=8), now=timezone.now())
    kept = spend_log(age=timedelta(days=6), now=timezone.now())

    assert tasks.spend_logs_prune() == 1
    assert list(SpendLog.objects.values_list("call_id", flat=True)) == [kept.call_id]


def test_the_task_keeps_everything_when_no_period_is_configured(general_settings):
    general_settings(maximum_spend_logs_retention_period=None)
    spend_log(age=timedelta(days=4000), now=timezone.now())

    assert tasks.spend_logs_prune() == 0
    assert SpendLog.objects.count() == 1
