"""The request ledger in the admin: read-only, and built for a table too big to count.

Every query the change list runs is answered by an index or bounded: the page (``start_time`` index,
newest first), the count (planner estimate or capped), the date drill-down (two index probes, see
``spend/templatetags/spend_admin.py``), filter choices (config and the teams table, never the ledger),
team aliases (one query per page) and search (exact values of indexed columns).
"""
from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from gateway_project.config import get_config
from keys.hashing import KEY_PREFIX, digest
from spend.models import SpendLog
from teams.admin import money
from teams.models import Team


def estimated_rows(queryset: QuerySet) -> int:
    """PostgreSQL's planner estimate of the table's rows; -1 when unknown (never analyzed, other databases).

    A partitioned table (the spend log, ``spend/partitions.py``) is the sum of its partitions' estimates:
    autovacuum analyzes partitions, never their parent."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return -1
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT CASE WHEN c.relkind = 'p' THEN
                (SELECT COALESCE(SUM(p.reltuples) FILTER (WHERE p.reltuples >= 0), -1)
                 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid WHERE i.inhparent = c.oid)
                ELSE c.reltuples END
            FROM pg_class c WHERE c.oid = to_regclass(%s)""", [queryset.model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


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
    """A few recent windows, beside the date drill-down."""

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


class TeamFilter(admin.SimpleListFilter):
    """Choices from the teams table (the first ``shown`` by alias), not a SELECT DISTINCT over the ledger.
    Any team id works in the URL (``?team_id=…``), listed or not, and so do deleted teams' ids."""

    title = "team"
    parameter_name = "team_id"
    shown = 100

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        teams = list(Team.objects.order_by("team_alias", "team_id").values_list("team_id", "team_alias")[: self.shown])
        if self.value() and self.value() not in {team_id for team_id, _ in teams}:
            teams.append((self.value(), None))
        return [(team_id, alias or team_id) for team_id, alias in teams]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SpendLog]) -> QuerySet[SpendLog]:
        return queryset.filter(team_id=self.value()) if self.value() else queryset


class SpendLogChangeList(ChangeList):
    """Reads the page's team aliases in one query: the ledger names teams by id only (no foreign key)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        team_ids = {row.team_id for row in self.result_list if row.team_id}
        aliases = {}
        if team_ids:
            aliases = dict(Team.objects.filter(team_id__in=team_ids).values_list("team_id", "team_alias"))
        for row in self.result_list:
            row.team_alias = aliases.get(row.team_id)


@admin.register(SpendLog)
class SpendLogAdmin(admin.ModelAdmin):
    list_display = ("start_time", "model_group", "key_alias", "team", "end_user", "total_tokens", "cost", "status",
                    "request_id")
    list_display_links = ("start_time",)
    list_filter = ("status", ModelGroupFilter, TeamFilter, StartedFilter)
    # The changelist template swaps Django's drill-down (SELECT DISTINCT over the rows) for one that
    # costs two index probes; the ?start_time__year/month/day parameters are Django's own.
    date_hierarchy = "start_time"
    change_list_template = "admin/spend/spendlog/change_list.html"
    # Exact match only: each column's index answers it; icontains would scan the table.
    search_fields = ("request_id__exact", "end_user__exact")
    search_help_text = "Exact request id, end user id, or a raw sk- key"
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return SpendLogChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[SpendLog], search_term: str):
        term = search_term.strip()
        if term.startswith(KEY_PREFIX) and " " not in term:
            # A pasted key: its rows by the key's digest (indexed), never the key itself.
            return queryset.filter(api_key=digest(term)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Team", ordering="team_id")
    def team(self, obj: SpendLog) -> str | None:
        return getattr(obj, "team_alias", None) or obj.team_id

    @admin.display(description="Spend", ordering="spend")
    def cost(self, obj: SpendLog) -> str:
        return "unknown price" if obj.spend is None else money(obj.spend)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SpendLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SpendLog | None = None) -> bool:
        return False
