"""Celery task for audit retention: thin, safe to run twice; the work is in ``services``."""
from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from gateway_project.audit import services


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_backoff_max=300,
             max_retries=5, acks_late=True)
def audit_logs_prune() -> int:
    """Delete audit records older than general_settings.maximum_audit_logs_retention_period (if set)."""
    return services.audit_logs_prune()
