"""A real Celery worker with beat (``celery -A gateway_project worker -B``) against Redis, sharing the
test database: beat's retention deletes exactly the old spend logs, and the worker delivers alerts.

PostgreSQL only: on SQLite the test database lives in this process's memory, out of a worker's reach.
"""
from __future__ import annotations

import os
import sys
import uuid
from datetime import timedelta

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from spend.models import SpendLog, SpendLogTag
from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for
from tests.servers.fake_webhook import messages
from tests.servers.process import ServerProcess
from tests.tasks.conftest import ROOT, launch_webhook, spend_log

pytestmark = pytest.mark.e2e

BROKER = "redis://127.0.0.1:6379/5"  # a database of its own: nothing else in the suite uses it
PREFIX = f"test-{uuid.uuid4().hex[:12]}:"  # its own queue, should another test session share this Redis
CONFIG = """general_settings:
  master_key: sk-celery-test
  maximum_spend_logs_retention_period: 30d
  maximum_spend_logs_retention_interval: 1s
  alerting: ["slack"]
"""


def worker_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] or "postgres"
    if db["PASSWORD"]:
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def webhook(tmp_path_factory):
    with launch_webhook(tmp_path_factory.mktemp("celery-webhook")) as client:
        yield client


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory, webhook):
    if connection.vendor != "postgresql":
        pytest.skip("the worker must reach the test database, which on SQLite is in this process's memory")
    work_dir = tmp_path_factory.mktemp("celery")
    config = work_dir / "config.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings", "DATABASE_URL": worker_database_url(),
           "REDIS_URL": BROKER, "GATEWAY_REDIS_PREFIX": PREFIX, "GATEWAY_CONFIG": str(config),
           "GATEWAY_DATA_DIR": str(work_dir), "SLACK_WEBHOOK_URL": f"{webhook.base_url}/services/T0/B0/x"}
    env.pop("GATEWAY_MASTER_KEY", None)
    process = ServerProcess([sys.executable, "-m", "celery", "-A", "gateway_project", "worker", "-B",
                             "--loglevel", "info", "--concurrency", "1", "--without-mingle", "--without-gossip"],
                            log_dir=work_dir, name="celery-worker", env=env, cwd=ROOT)
    with process:
        wait_for(lambda: not process.is_running() or " ready." in process.log_tail(200), timeout=60)
        assert process.is_running(), process.log_tail()
        yield process


@pytest.mark.django_db(transaction=True)
def test_beat_retention_deletes_exactly_the_spend_logs_older_than_the_period(worker):
    now = timezone.now()
    old = [spend_log(now=now, age=timedelta(days=days), tags=("app",)) for days in (31, 45, 400)]
    kept = [spend_log(now=now, age=timedelta(days=days), tags=("app",)) for days in (29, 1, 0)]

    wait_for(lambda: not SpendLog.objects.filter(call_id__in=[r.call_id for r in old]).exists(), timeout=30)

    assert set(SpendLog.objects.values_list("call_id", flat=True)) == {r.call_id for r in kept}
    assert set(SpendLogTag.objects.values_list("spend_log_id", flat=True)) == {r.call_id for r in kept}
    assert "spend.tasks.spend_logs_prune" in worker.log_tail(400)


def test_the_worker_delivers_an_enqueued_alert_to_the_slack_webhook(worker, webhook):
    webhook.clear()
    producer = Celery(broker=BROKER)
    producer.conf.task_default_queue = f"{PREFIX}tasks"

    producer.send_task("spend.tasks.alert_send", args=[{"kind": "deployment_failing", "subject": "deployment d1",
                                                       "text": "Deployment failing: openai/gpt-4o"}])

    wait_for(lambda: messages(webhook), timeout=20)
    assert messages(webhook) == ["Deployment failing: openai/gpt-4o"]


def test_a_gateway_with_redis_hands_its_alerts_to_the_worker(worker, webhook, tmp_path):
    webhook.clear()
    config = f"""general_settings:
  master_key: {MASTER_KEY}
  max_request_size_mb: 0.01
  alerting: ["slack"]
"""
    env = {"REDIS_URL": BROKER, "GATEWAY_REDIS_PREFIX": PREFIX, "SLACK_WEBHOOK_URL": f"{webhook.base_url}/hook"}
    with launch_gateway(tmp_path, config, name="gateway-with-redis", env=env) as gw:
        for _ in range(2):
            response = gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                    json={"model": "fake-openai-endpoint", "messages": [{"role": "user",
                                                                                         "content": "x" * 20_000}]})
            assert response.status_code == 400

        wait_for(lambda: messages(webhook), timeout=20)

    assert [text.split(" sent")[0] for text in messages(webhook)] == ["Request too large: 127.0.0.1"]
    assert "spend.tasks.alert_send" in worker.log_tail(400)
