"""The audit trail in the admin: read-only, filterable, and never counted in full."""
from __future__ import annotations

import json
from typing import Any

from auditlog.models import LogEntry
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

from gateway_project.audit import registry
from gateway_project.audit.models import AuditRecord

# One view of the trail: this one shows each change with its chain link and auditlog's raw diff.
# auditlog's own list would show the same entries with no sign of whether they were tampered with.
if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)


class CappedCountPaginator(Paginator):
    """Counts at most ``cap`` rows (``SELECT COUNT(*) FROM (… LIMIT cap)``), never the whole table;
    pages past the cap are not offered."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.cap].count()


class TableFilter(admin.SimpleListFilter):
    """Choices from the registered models, not a SELECT DISTINCT over the trail."""

    title = "table"
    parameter_name = "table_name"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in registry.table_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
        return queryset.filter(table_name=self.value()) if self.value() else queryset


class ChangedByFilter(admin.SimpleListFilter):
    """The actors of the latest records (a bounded read), plus the one chosen."""

    title = "changed by"
    parameter_name = "changed_by"
    recent = 500

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        latest = AuditRecord.objects.order_by("-seq").values_list("changed_by", flat=True)[: self.recent]
        names = {name for name in latest if name} | ({self.value()} if self.value() else set())
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
        return queryset.filter(changed_by=self.value()) if self.value() else queryset


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ("updated_at", "action", "table_name", "object_id", "changed_by")
    list_filter = (TableFilter, "action", ChangedByFilter)
    search_fields = ("object_id__exact", "changed_by__exact")
    search_help_text = "Exact object id (team id, key hash, user id) or actor"
    ordering = ("-seq",)
    list_per_page = 50
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = ("id", "updated_at", "changed_by", "changed_by_api_key", "action", "table_name", "object_id",
              "before", "after", "field_changes", "seq", "prev_hash", "hash")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditRecord | None = None) -> bool:
        return False

    @admin.display(description="before value")
    def before(self, obj: AuditRecord) -> str:
        return _pretty(obj.before_value)

    @admin.display(description="updated values")
    def after(self, obj: AuditRecord) -> str:
        return _pretty(obj.updated_values)

    @admin.display(description="field changes (auditlog)")
    def field_changes(self, obj: AuditRecord) -> str:
        return _pretty(obj.log_entry.changes)
