"""Daily roll-ups: one row per day × key × team × user × end user × model (× tag), equal to the logs."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db.models import Sum

from spend import services, tasks
from spend.models import SpendDaily, SpendLog
from tests.tasks.conftest import NOW, spend_log

pytestmark = pytest.mark.django_db
DAY = NOW.date()


def totals(**filters) -> dict:
    return SpendDaily.objects.filter(**filters).aggregate(spend=Sum("spend"), requests=Sum("requests"),
                                                          tokens=Sum("total_tokens"))


def test_the_days_totals_equal_the_sum_of_its_logs_to_the_cent():
    rng = random.Random(7)
    for i in range(60):
        spend_log(age=timedelta(minutes=i * 7), api_key=f"key-{i % 3}", team_id=rng.choice(["t1", "t2", None]),
                  end_user=rng.choice(["cust-a", None]), spend=rng.uniform(0, 0.5), total_tokens=rng.randint(1, 900))

    services.spend_aggregate_daily(day=DAY)

    logs = SpendLog.objects.filter(start_time__date=DAY).aggregate(spend=Sum("spend"), tokens=Sum("total_tokens"))
    rolled = totals(day=DAY, tag="")
    assert round(rolled["spend"], 2) == round(logs["spend"], 2)
    assert rolled["spend"] == pytest.approx(logs["spend"], abs=1e-9)
    assert (rolled["requests"], rolled["tokens"]) == (SpendLog.objects.filter(start_time__date=DAY).count(),
                                                      logs["tokens"])


def test_rows_group_by_team_key_customer_model_and_day():
    spend_log(api_key="k1", team_id="t1", end_user="c1", model_group="gpt", spend=0.25)
    spend_log(api_key="k1", team_id="t1", end_user="c1", model_group="gpt", spend=0.5, status="failure")
    spend_log(api_key="k2", team_id=None, end_user=None, model_group="claude", spend=1.0)
    spend_log(age=timedelta(days=1), api_key="k1", team_id="t1", spend=9.0)  # yesterday: another day

    services.spend_aggregate_daily(day=DAY)

    rows = {(r.api_key, r.team_id, r.end_user, r.model_group): (r.requests, r.failed_requests, r.spend)
            for r in SpendDaily.objects.filter(day=DAY, tag="")}
    assert rows == {("k1", "t1", "c1", "gpt"): (2, 1, 0.75), ("k2", "", "", "claude"): (1, 0, 1.0)}


def test_tag_rows_count_each_request_once_per_tag_it_carried():
    spend_log(tags=("app", "beta"), spend=0.25)
    spend_log(tags=("app",), spend=0.5)
    spend_log(spend=1.0)

    services.spend_aggregate_daily(day=DAY)

    by_tag = {r["tag"]: r["spend"] for r in SpendDaily.objects.filter(day=DAY).exclude(tag="").values("tag")
              .annotate(spend=Sum("spend"))}
    assert by_tag == {"app": 0.75, "beta": 0.25}
    assert totals(day=DAY, tag="")["spend"] == 1.75


def test_running_again_recomputes_instead_of_adding():
    spend_log(spend=0.25)
    services.spend_aggregate_daily(day=DAY)
    services.spend_aggregate_daily(day=DAY)
    assert (SpendDaily.objects.count(), totals()["spend"]) == (1, 0.25)

    spend_log(spend=0.5)  # a late row of the same group
    services.spend_aggregate_daily(day=DAY)

    assert (SpendDaily.objects.count(), totals()["spend"], totals()["requests"]) == (1, 0.75, 2)


def test_unpriced_requests_count_with_zero_spend():
    spend_log(spend=None)

    services.spend_aggregate_daily(day=DAY)

    row = SpendDaily.objects.get()
    assert (row.requests, row.spend) == (1, 0.0)


def test_the_task_rolls_up_yesterday_and_today():
    from django.utils import timezone

    now = timezone.now()
    for days in (0, 1, 2):
        spend_log(now=now.replace(hour=12), age=timedelta(days=days), spend=1.0)

    tasks.spend_aggregate_daily()

    assert sorted(SpendDaily.objects.values_list("day", flat=True)) == [
        (now - timedelta(days=1)).date(), now.date()]
