"""Alerts: which events alert, de-duplication within a window, and the null alerter."""
from __future__ import annotations

import threading
import uuid

import pytest
from django.core import mail

from keys.models import VirtualKey
from spend import alerts
from spend.alerts import Alert, Alerter, LocalDedupe, NullAlerter, RedisDedupe
from spend.writer import write_batch
from teams.models import Customer, Team
from tests.factories import spend_record
from tests.servers.process import free_port

REDIS = "redis://127.0.0.1:6379/5"
TOO_LARGE = Alert(alerts.REQUEST_TOO_LARGE, "client 10.0.0.1", "too large")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collected:
    """A dispatch that records what it was given."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._changed = threading.Condition()

    def __call__(self, alert: Alert) -> None:
        with self._changed:
            self.alerts.append(alert)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Alert]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.alerts) >= count, timeout), self.alerts
        return self.alerts


# --- De-duplication ---------------------------------------------------------------------------------


def test_the_same_alert_is_sent_once_within_the_window():
    clock = Clock()
    dedupe = LocalDedupe(clock)

    first, again = dedupe.first("k|s", 3600), dedupe.first("k|s", 3600)
    clock.now += 3599
    still = dedupe.first("k|s", 3600)
    clock.now += 1
    after = dedupe.first("k|s", 3600)

    assert (first, again, still, after) == (True, False, False, True)


def test_another_subject_is_not_held_back():
    dedupe = LocalDedupe()

    assert (dedupe.first("k|key a", 60), dedupe.first("k|key b", 60)) == (True, True)


def test_redis_dedupe_is_shared_by_every_instance():
    prefix = f"test-{uuid.uuid4().hex}:"
    one, two = RedisDedupe(REDIS, prefix), RedisDedupe(REDIS, prefix)

    assert (one.first("k|s", 60), two.first("k|s", 60), two.first("k|other", 60)) == (True, False, True)


def test_redis_unreachable_falls_back_to_this_processs_memory():
    dedupe = RedisDedupe(f"redis://127.0.0.1:{free_port()}/0", "test:")

    assert (dedupe.first("k|s", 60), dedupe.first("k|s", 60)) == (True, False)


# --- Budget crossings -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_crossing_80_and_100_percent_of_a_key_budget_alerts_once_each():
    token = "a" * 64
    VirtualKey.objects.create(token=token, key_name="sk-...abcd", key_alias="search-app", max_budget=1.0)

    def spend(amount: float) -> list[Alert]:
        records = [spend_record(api_key=token, spend=amount)]
        write_batch(records)
        return alerts.budget_crossings(records, (0.8, 1.0))

    steps = [spend(0.5), spend(0.3), spend(0.1), spend(0.1), spend(0.1)]

    assert [[a.subject.split("|")[1] for a in step] for step in steps] == [[], ["0.8"], [], ["1"], []]
    assert steps[1][0].text == ("Budget alert: key search-app (sk-...abcd) has spent $0.8, 80% of its max budget "
                                "of $1.")


@pytest.mark.django_db
def test_one_batch_jumping_past_both_thresholds_alerts_both():
    Team.objects.create(team_id="t1", max_budget=10.0)
    records = [spend_record(team_id="t1", spend=6.0), spend_record(team_id="t1", spend=5.0)]
    write_batch(records)

    crossed = alerts.budget_crossings(records, (0.8, 1.0))

    assert [a.subject.split("|")[:2] for a in crossed] == [["team t1", "0.8"], ["team t1", "1"]]


@pytest.mark.django_db
def test_levels_without_a_budget_never_alert():
    Customer.objects.create(user_id="c1")
    records = [spend_record(end_user="c1", spend=100.0), spend_record(user="nobody", spend=100.0)]
    write_batch(records)

    assert alerts.budget_crossings(records, (0.8, 1.0)) == []


# --- The alerter ------------------------------------------------------------------------------------


def alerter(general_settings, dispatch, **values) -> Alerter:
    config = general_settings(alerting=["slack"], alerting_args={"slack_webhook_url": "http://127.0.0.1:9/x"},
                              **values)
    return Alerter(config, dedupe=LocalDedupe(), dispatch=dispatch)


def test_nothing_configured_gives_the_null_alerter(general_settings):
    general_settings(alerting=[])

    assert isinstance(alerts.alerter(), NullAlerter)


def test_slack_without_a_webhook_url_gives_the_null_alerter(general_settings, settings):
    settings.SLACK_WEBHOOK_URL = None
    general_settings(alerting=["slack"])

    assert isinstance(alerts.alerter(), NullAlerter)


def test_emitted_alerts_are_dispatched_once_per_window(general_settings):
    sent = Collected()
    target = alerter(general_settings, sent)

    for _ in range(3):
        target.emit(TOO_LARGE)
    target.emit(Alert(alerts.DEPLOYMENT_FAILING, "deployment d1", "failing"))
    target.stop()

    assert [a.kind for a in sent.alerts] == [alerts.REQUEST_TOO_LARGE, alerts.DEPLOYMENT_FAILING]


def test_alert_types_select_the_kinds_litellm_names_included(general_settings):
    sent = Collected()
    target = alerter(general_settings, sent, alert_types=["cooldown_deployment"])

    target.emit(TOO_LARGE)
    target.emit(Alert(alerts.DEPLOYMENT_FAILING, "deployment d1", "failing"))
    target.stop()

    assert [a.kind for a in sent.alerts] == [alerts.DEPLOYMENT_FAILING]


def test_a_failing_delivery_is_logged_and_the_next_alert_still_goes(general_settings, caplog):
    delivered = Collected()

    def flaky(alert: Alert) -> None:
        if alert.subject == "client first":
            raise OSError("webhook down")
        delivered(alert)

    target = alerter(general_settings, flaky)
    target.emit(Alert(alerts.REQUEST_TOO_LARGE, "client first", "one"))
    target.emit(Alert(alerts.REQUEST_TOO_LARGE, "client second", "two"))
    target.stop()

    assert [a.subject for a in delivered.alerts] == ["client second"]
    assert "an alert could not be processed or sent" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_written_spend_is_checked_on_the_alerts_thread(general_settings):
    sent = Collected()
    target = alerter(general_settings, sent)
    VirtualKey.objects.create(token="b" * 64, key_name="sk-...bbbb", max_budget=1.0)
    records = [spend_record(api_key="b" * 64, spend=0.9)]
    write_batch(records)

    target.spend_written(records)

    assert [a.subject.split("|")[:2] for a in sent.wait_for(1)] == [["key " + "b" * 64, "0.8"]]
    target.stop()


def test_hand_overs_never_raise_even_when_the_config_is_broken(general_settings, settings):
    from gateway_project.config import set_config

    alerts.stop()
    set_config(object())  # anything building the alerter fails

    alerts.request_too_large(client="10.0.0.1", path="/chat/completions", size_bytes=10, limit_mb=1)
    alerts.deployment_failing(model_group="g", deployment_id="d" * 64, model="openai/x", failures=4, cooldown=5)
    alerts.spend_written([])


# --- Delivery ---------------------------------------------------------------------------------------


def test_email_alerts_go_to_the_configured_recipients(general_settings):
    config = general_settings(alerting=["email"], alerting_args={"email_recipients": ["ops@example.com"]})

    alerts.alert_deliver(TOO_LARGE, config)

    assert [(m.to, m.subject, m.body) for m in mail.outbox] == [
        (["ops@example.com"], "[Gateway] request too large: client 10.0.0.1", "too large")]
