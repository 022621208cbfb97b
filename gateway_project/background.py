"""Embedded mode (no Redis): the gateway runs the periodic jobs itself, on an in-process schedule.

The jobs are ``settings.GATEWAY_PERIODIC_JOBS``, the list Celery beat reads too, and each run calls
the function the worker's task calls (the job's ``run``, so Celery is not loaded here). A thread started
by the server's lifespan (``start``) runs them, and ``stop`` ends it at shutdown. With a broker
(REDIS_URL) there is nothing to start: beat sends the jobs to a worker. Several server processes on one
database elect one runner through a lock file, so a job does not run once per worker process.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils.module_loading import import_string

from gateway_project.config import GatewayConfig, get_config
from gateway_project.durations import add_duration

logger = logging.getLogger("gateway.jobs")

FIRST_RUN_AFTER = 30.0  # seconds after start-up, at most: a process that restarts often still runs its jobs


@dataclass(frozen=True)
class Job:
    name: str
    task: str      # dotted path of the Celery task
    every: float   # seconds
    run: str = ""  # dotted path of the plain function the task calls (run here); the task itself if empty


def duration_seconds(text: str) -> float:
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    return (add_duration(start, text) - start).total_seconds()


def periodic_jobs(config: GatewayConfig | None = None) -> list[Job]:
    """The periodic jobs, with intervals that config.yaml overrides (``every_from``) applied."""
    general = (config or get_config()).general_settings
    jobs = []
    for entry in settings.GATEWAY_PERIODIC_JOBS:
        every = (getattr(general, entry["every_from"], None) if entry.get("every_from") else None) or entry["every"]
        jobs.append(Job(name=entry["name"], task=entry["task"], every=duration_seconds(every),
                        run=entry.get("run", "")))
    return jobs


def run_job(job: Job) -> None:
    """One run, as a worker would do it; failures are logged (the next interval tries again)."""
    close_old_connections()
    try:
        result = import_string(job.run or job.task)()
        logger.debug("job %s done: %s", job.name, result)
    except Exception:
        logger.exception("job %s failed; it runs again in %gs", job.name, job.every)
    finally:
        close_old_connections()


class RunnerLock:
    """An exclusive, non-blocking lock on a file; released when its holder exits, even by a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def _default_lock() -> RunnerLock:
    db = settings.DATABASES["default"]
    ident = hashlib.sha256(f"{db.get('HOST')}:{db.get('PORT')}:{db['NAME']}".encode()).hexdigest()[:16]
    return RunnerLock(Path(settings.DATA_DIR) / f"scheduler-{ident}.lock")


class Scheduler:
    """Runs each job ``FIRST_RUN_AFTER`` (or its interval, if shorter) after start, then every interval."""

    def __init__(self, jobs: list[Job], *, lock: RunnerLock, run: Callable[[Job], None] = run_job,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.jobs, self._lock, self._run, self._clock = jobs, lock, run, clock
        started = clock()
        self._due = {job.name: started + min(job.every, FIRST_RUN_AFTER) for job in jobs}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_pending(self) -> list[str]:
        """Run the jobs that are due, if this process holds the runner lock; returns their names."""
        now = self._clock()
        due = [job for job in self.jobs if self._due[job.name] <= now]
        if not due or not self._lock.acquire():
            return []
        for job in due:
            self._run(job)
            self._due[job.name] = self._clock() + job.every
        return [job.name for job in due]

    def seconds_to_next(self) -> float:
        return max(0.0, min(self._due.values(), default=60.0) - self._clock())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._lock.release()

    def _loop(self) -> None:
        # Another process holds the lock: look again now and then, to take over if it exits.
        while not self._stopping.wait(min(self.seconds_to_next(), 60.0)):
            if not self.run_pending() and self.seconds_to_next() == 0.0:
                self._stopping.wait(5.0)
        connections.close_all()  # this thread's own connection; nobody else would close it


class NoScheduler:
    """A broker is configured: Celery beat sends the jobs, this process runs none."""

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass


_scheduler: Scheduler | NoScheduler | None = None


def start() -> None:
    """At server start-up (the ASGI lifespan)."""
    global _scheduler
    if _scheduler is None:
        _scheduler = NoScheduler() if settings.CELERY_BROKER_URL else Scheduler(periodic_jobs(), lock=_default_lock())
        _scheduler.start()


def stop() -> None:
    """At shutdown: waits for a job in progress (up to 10 s)."""
    global _scheduler
    if _scheduler is not None:
        _scheduler.stop()
        _scheduler = None
