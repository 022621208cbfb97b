"""The audit trail's own rows: each audited change as the API shows it, linked into a hash chain."""
from __future__ import annotations

import uuid

from django.db import models

# The hash a chain starts from, before its first record (and after retention pruned nothing yet).
GENESIS = "0" * 64


class AuditAction(models.TextChoices):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"


class AuditRecord(models.Model):
    """One audited change, as ``/audit`` shows it, and its link in the chain.

    The change itself is django-auditlog's ``LogEntry`` (the raw field diff, the acting user's row, the
    client address); this row adds the contract's view of it and
    ``hash = sha256(prev_hash + canonical JSON of the row and the raw diff)``, so an edited, deleted or
    reordered record is found by ``manage.py audit_verify``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # PROTECT: an entry in the chain leaves only with its record, through retention (audit_logs_prune).
    log_entry = models.OneToOneField("auditlog.LogEntry", on_delete=models.PROTECT, related_name="audit_record")
    seq = models.PositiveBigIntegerField(unique=True, help_text="Position in the chain: 1, 2, 3 … without gaps")
    updated_at = models.DateTimeField(db_index=True)
    changed_by = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    changed_by_api_key = models.CharField(max_length=64, null=True, blank=True, db_index=True,
                                          help_text="Digest of the key that made the change")
    action = models.CharField(max_length=16, choices=AuditAction.choices, db_index=True)
    table_name = models.CharField(max_length=64, db_index=True)
    object_id = models.CharField(max_length=255, db_index=True)
    before_value = models.JSONField(null=True, blank=True)
    updated_values = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.action} {self.table_name} {self.object_id}"


class ChainMark(models.Model):
    """A named position in the chain.

    ``head``: the last record appended; every append locks this row, which serialises appends so
    concurrent writers cannot fork the chain. ``pruned``: the last record retention deleted (a
    checkpoint); verification starts from it.
    """

    HEAD = "head"
    PRUNED = "pruned"

    name = models.CharField(max_length=16, primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.seq}"
