"""The periodic jobs' work, free of Celery: the tasks in ``spend/tasks.py`` call these, and so does the
gateway's in-process scheduler (``gateway_project/background.py``) when there is no Redis, without
loading Celery into the serving process (docs/performance.md, "Memory"). Each is safe to run twice."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from gateway_project.config import get_config
from spend import partitions, services


def spend_logs_prune() -> int:
    """Delete spend logs older than general_settings.maximum_spend_logs_retention_period (if set)."""
    period = get_config().general_settings.maximum_spend_logs_retention_period
    if not period:
        return 0
    return services.spend_logs_prune(older_than=services.retention_cutoff(period, now=timezone.now()))


def spend_partitions_ensure() -> int:
    """PostgreSQL: create this month's and the next months' spend-log partitions; elsewhere nothing."""
    return len(partitions.ensure_partitions(now=timezone.now()))


def budgets_reset() -> int:
    return services.budgets_reset(now=timezone.now())


def spend_aggregate_daily() -> int:
    """Roll up yesterday (late rows included) and today so far."""
    today = timezone.now().date()
    return sum(services.spend_aggregate_daily(day=day) for day in (today - timedelta(days=1), today))
