"""Reads of the audit trail, in the contract's shape (LiteLLM's audit log row)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from gateway_project.audit.models import AuditRecord
from gateway_project.errors import NotFoundError


def audit_row(record: AuditRecord) -> dict[str, Any]:
    """One record as ``/audit`` shows it (the seed's "Expected Log")."""
    return {
        "id": str(record.id),
        "updated_at": record.updated_at.isoformat(),
        "changed_by": record.changed_by,
        "changed_by_api_key": record.changed_by_api_key,
        "action": record.action,
        "table_name": record.table_name,
        "object_id": record.object_id,
        "before_value": record.before_value,
        "updated_values": record.updated_values,
    }


def audit_record_list(*, changed_by: str | None = None, changed_by_api_key: str | None = None,
                      action: str | None = None, table_name: str | None = None, object_id: str | None = None,
                      start: datetime | None = None, end: datetime | None = None,
                      ascending: bool = False) -> QuerySet[AuditRecord]:
    """Records matching every filter given, by time (newest first unless ``ascending``); the dates are
    inclusive."""
    exact = {"changed_by": changed_by, "changed_by_api_key": changed_by_api_key, "action": action,
             "table_name": table_name, "object_id": object_id}
    records = AuditRecord.objects.filter(**{name: value for name, value in exact.items() if value is not None})
    if start is not None:
        records = records.filter(updated_at__gte=start)
    if end is not None:
        records = records.filter(updated_at__lte=end)
    # seq breaks ties: two records of one transaction may carry the same time.
    return records.order_by("updated_at", "seq") if ascending else records.order_by("-updated_at", "-seq")


def audit_record_get(*, record_id: str) -> AuditRecord:
    try:
        record = AuditRecord.objects.filter(id=uuid.UUID(record_id)).first()
    except ValueError:
        record = None
    if record is None:
        raise NotFoundError(f"Audit log not found, passed id={record_id}", param="id")
    return record
