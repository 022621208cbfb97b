"""The Celery app: configured from settings, every job's task registered, the schedule from the list."""
from __future__ import annotations

from django.conf import settings

from gateway_project import celery_app
from gateway_project.background import periodic_jobs


def test_the_broker_is_redis_url_and_tasks_are_never_run_eagerly():
    assert celery_app.conf.broker_url == settings.REDIS_URL
    assert celery_app.conf.task_always_eager is False
    assert celery_app.conf.task_default_queue == f"{settings.GATEWAY_REDIS_PREFIX}tasks"


def test_every_periodic_job_names_a_registered_task():
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    celery_app.finalize()

    assert {job.task for job in periodic_jobs()} <= set(celery_app.tasks)
    assert "spend.tasks.alert_send" in celery_app.tasks


def test_beat_reads_the_same_list():
    celery_app.finalize()
    celery_app.on_after_finalize.send(sender=celery_app)

    schedule = celery_app.conf.beat_schedule
    assert {name: entry["schedule"] for name, entry in schedule.items()} == {
        job.name: job.every for job in periodic_jobs()}
