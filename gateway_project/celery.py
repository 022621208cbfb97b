"""The Celery app: broker Redis (``REDIS_URL``), tasks found in each app's ``tasks.py``.

    celery -A gateway_project worker --loglevel info      # runs tasks
    celery -A gateway_project beat --loglevel info        # sends the periodic ones
    celery -A gateway_project worker -B --loglevel info   # both in one process (small installs)

The periodic jobs are one list in settings (``GATEWAY_PERIODIC_JOBS``); without Redis the gateway
runs the same tasks itself (``gateway_project/background.py``). See docs/background-jobs.md.
"""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

app = Celery("gateway_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _beat_schedule(sender: Celery, **kwargs) -> None:
    # Here rather than in settings: an interval may come from config.yaml, which is read only once
    # Django is set up (beat and worker finalize the app after that, before the scheduler starts).
    from gateway_project.background import periodic_jobs

    sender.conf.beat_schedule = {
        # A run that has waited a whole interval is dropped: the next one does the same work.
        job.name: {"task": job.task, "schedule": job.every, "options": {"expires": job.every}}
        for job in periodic_jobs()
    }
