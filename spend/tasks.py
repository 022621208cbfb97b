"""Celery tasks: thin, idempotent, retried on transient database trouble; the work is in ``spend.jobs``
and services.

Beat sends the periodic ones (``settings.GATEWAY_PERIODIC_JOBS``); without Redis the gateway calls
the same functions of ``spend.jobs`` itself (``gateway_project/background.py``).
"""
from __future__ import annotations

import httpx2
from celery import shared_task
from django.db import InterfaceError, OperationalError

from spend import alerts, jobs

# Each of these is safe to run twice (and concurrently): a retry after a lost connection is harmless.
TRANSIENT_DB = dict(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_backoff_max=300,
                    max_retries=5, acks_late=True)


@shared_task(**TRANSIENT_DB)
def spend_logs_prune() -> int:
    """Delete spend logs older than general_settings.maximum_spend_logs_retention_period (if set)."""
    return jobs.spend_logs_prune()


@shared_task(**TRANSIENT_DB)
def spend_partitions_ensure() -> int:
    """PostgreSQL: create this month's and the next months' spend-log partitions; elsewhere nothing."""
    return jobs.spend_partitions_ensure()


@shared_task(**TRANSIENT_DB)
def budgets_reset() -> int:
    return jobs.budgets_reset()


@shared_task(**TRANSIENT_DB)
def spend_aggregate_daily() -> int:
    """Roll up yesterday (late rows included) and today so far."""
    return jobs.spend_aggregate_daily()


@shared_task(autoretry_for=(httpx2.HTTPError, OSError), retry_backoff=True, max_retries=5)
def alert_send(alert: dict[str, str]) -> None:
    """Deliver one alert (already de-duplicated by whoever enqueued it)."""
    alerts.alert_deliver(alerts.Alert(**alert))
