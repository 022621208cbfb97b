"""Embedded mode: without a broker the gateway runs the periodic jobs itself, from the same list."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway_project import background
from gateway_project.background import FIRST_RUN_AFTER, Job, NoScheduler, RunnerLock, Scheduler
from spend.models import SpendLog
from tests.e2e.conftest import ROOT, wait_for
from tests.tasks.conftest import spend_log


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_jobs_come_from_the_settings_list(general_settings):
    general_settings(maximum_spend_logs_retention_interval=None)

    jobs = {job.name: (job.task, job.every) for job in background.periodic_jobs()}

    assert jobs == {"spend-logs-prune": ("spend.tasks.spend_logs_prune", 86400.0),
                    "budgets-reset": ("spend.tasks.budgets_reset", 60.0),
                    "spend-aggregate-daily": ("spend.tasks.spend_aggregate_daily", 900.0),
                    "spend-partitions-ensure": ("spend.tasks.spend_partitions_ensure", 43200.0)}


def test_the_embedded_runner_calls_what_the_tasks_call_without_loading_celery():
    # A fresh interpreter: this one may have loaded Celery for other tests.
    script = """
import sys, django
django.setup()
from django.utils.module_loading import import_string
from gateway_project.background import periodic_jobs
for job in periodic_jobs():
    assert job.run, job.name
    assert job.task.rsplit(".", 1)[1] == job.run.rsplit(".", 1)[1], job
    import_string(job.run)
assert "celery" not in sys.modules, "the embedded scheduler loaded Celery"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_configured_retention_interval_wins(general_settings):
    general_settings(maximum_spend_logs_retention_interval="6h")

    assert {job.name: job.every for job in background.periodic_jobs()}["spend-logs-prune"] == 6 * 3600


def test_each_job_runs_soon_after_start_then_every_interval(tmp_path):
    clock, ran = Clock(), []
    jobs = [Job("quick", "x.quick", every=10), Job("daily", "x.daily", every=86400)]
    scheduler = Scheduler(jobs, lock=RunnerLock(tmp_path / "lock"), run=lambda job: ran.append((clock.now, job.name)),
                          clock=clock)

    for clock.now in (9, 10, 19, 20, FIRST_RUN_AFTER - 1, FIRST_RUN_AFTER, FIRST_RUN_AFTER + 86399.5):
        scheduler.run_pending()

    assert [name for at, name in ran if name == "daily"] == ["daily"]
    assert ran[:3] == [(10, "quick"), (20, "quick"), (FIRST_RUN_AFTER, "quick")]
    assert (FIRST_RUN_AFTER, "daily") in ran


def test_one_process_per_database_runs_the_jobs(tmp_path):
    clock, ran = Clock(), []
    lock_path = tmp_path / "scheduler.lock"
    first = Scheduler([Job("j", "x.j", every=1)], lock=RunnerLock(lock_path), run=lambda j: ran.append("first"),
                      clock=clock)
    second = Scheduler([Job("j", "x.j", every=1)], lock=RunnerLock(lock_path), run=lambda j: ran.append("second"),
                       clock=clock)

    clock.now = 1
    first.run_pending(), second.run_pending()
    first.stop()  # its process ends: the lock is free
    clock.now = 2
    second.run_pending()

    assert ran == ["first", "second"]


def test_with_a_broker_the_gateway_runs_no_jobs(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/5"

    background.start()
    try:
        assert isinstance(background._scheduler, NoScheduler)
    finally:
        background.stop()


@pytest.mark.django_db(transaction=True)
def test_the_in_process_schedule_prunes_old_spend_logs(general_settings, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    general_settings(maximum_spend_logs_retention_period="30d", maximum_spend_logs_retention_interval="1s")
    spend_log(now=timezone.now(), age=timedelta(days=31))
    kept = spend_log(now=timezone.now(), age=timedelta(days=29))

    background.start()
    try:
        wait_for(lambda: SpendLog.objects.count() == 1)
    finally:
        background.stop()

    assert list(SpendLog.objects.values_list("call_id", flat=True)) == [kept.call_id]
