"""The request ledger in the admin: read-only, and built for a table too big to count."""
from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from gateway_project.config import get_config
from spend.models import SpendLog


def estimated_rows(queryset: QuerySet) -> int:
    """PostgreSQL's planner estimate of the table's rows; -1 when unknown (never analyzed, other databases)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return -1
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [queryset.model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row else -1


class EstimatedCountPaginator(Paginator):
    """Never runs COUNT(*) over the whole table.

    Unfiltered, a big PostgreSQL table is counted from planner statistics. Otherwise rows are counted
    up to ``cap`` (``SELECT COUNT(*) FROM (… LIMIT cap)``), so the answer is exact for small results and
    "at least cap" for large ones; pages past the cap are not offered.
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        if not self.object_list.query.where:
            estimate = estimated_rows(self.object_list)
            if estimate >= self.cap:
                return estimate
        return self.object_list.order_by()[: self.cap].count()  # unordered: any cap rows will do


class StartedFilter(admin.SimpleListFilter):
    """A few recent windows instead of date_hierarchy, whose month/day links scan the whole table."""

    title = "started"
    parameter_name = "started"
    windows = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, f"Last {name}") for name in self.windows]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SpendLog]) -> QuerySet[SpendLog]:
        window = self.windows.get(self.value() or "")
        return queryset.filter(start_time__gte=timezone.now() - window) if window else queryset


class ModelGroupFilter(admin.SimpleListFilter):
    """Choices from config.yaml's model_list, not a SELECT DISTINCT over the ledger."""

    title = "model group"
    parameter_name = "model_group"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in get_config().model_names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SpendLog]) -> QuerySet[SpendLog]:
        return queryset.filter(model_group=self.value()) if self.value() else queryset


@admin.register(SpendLog)
class SpendLogAdmin(admin.ModelAdmin):
    list_display = ("start_time", "request_id", "status", "model_group", "key_alias", "team_id", "end_user",
                    "total_tokens", "spend")
    list_filter = ("status", ModelGroupFilter, StartedFilter)
    # Exact match only: the column's index answers it; icontains would scan the table.
    search_fields = ("request_id__exact",)
    search_help_text = "Exact request id"
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SpendLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SpendLog | None = None) -> bool:
        return False
