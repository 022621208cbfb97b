"""/spend/logs, /spend/tags and /global/spend/report."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.serializers import validated
from keys.hashing import to_digest
from keys.models import VirtualKey
from spend import reports, spend_report
from spend.api.serializers import (DailyActivityQuerySerializer, DateRangeSerializer, SpendLogsQuerySerializer,
                                   SpendReportQuerySerializer)
from teams.models import TeamRole
from teams.permissions import IsAuthenticatedCaller, IsProxyAdminOrViewer, caller_user_id, sees_everything
from teams.selectors import team_role_of


class SpendLogsApi(APIView):
    """Spend rows, newest first. Admins see every row; any other key only its own."""

    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        query = validated(SpendLogsQuerySerializer, request.query_params)
        start, end = reports.day_bounds(query.get("start_date"), query.get("end_date"))
        api_key = to_digest(query["api_key"]) if query.get("api_key") else None
        user_id = query.get("user_id")
        caller = request.user
        if not sees_everything(caller):
            # A key sees its own rows; a signed-in non-admin user sees its user's rows.
            own_key, own_user = getattr(caller, "key_token", None), caller_user_id(caller)
            if own_key is None and own_user is None:
                return Response([])
            if (api_key and api_key != own_key) or (own_key is None and user_id and user_id != own_user):
                return Response([])
            api_key, user_id = own_key or api_key, user_id if own_key else own_user
        rows = reports.spend_logs(request_id=query.get("request_id"), api_key=api_key, user_id=user_id,
                                  start=start, end=end, limit=query["limit"])
        return Response([reports.spend_log_dict(row) for row in rows])


class SpendTagsApi(APIView):
    permission_classes = [IsProxyAdminOrViewer]

    def get(self, request):
        query = validated(DateRangeSerializer, request.query_params)
        start, end = reports.day_bounds(query.get("start_date"), query.get("end_date"))
        return Response(reports.spend_by_tag(start=start, end=end))


class IgnoreFormatParameter(BaseContentNegotiation):
    """JSON always: ``?format=`` picks the report's export format here, not a DRF renderer."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def report_scope(request, query: dict) -> tuple[dict[str, str], frozenset[str] | None]:
    """The query's filters (SpendDaily column -> value) and the key digests the caller may see.

    Proxy admins and viewers see everything. An internal user sees its own keys' spend, or, with
    ``team_id`` naming a team it is an admin of, that team's. A key without a user sees itself.
    """
    filters = {column: query[name] for name, column in spend_report.FILTERS.items() if query.get(name)}
    if filters.get("api_key"):
        filters["api_key"] = to_digest(filters["api_key"])
    caller = request.user
    if sees_everything(caller):
        return filters, None
    user_id, team_id = caller_user_id(caller), filters.get("team_id")
    if user_id is not None and team_id and team_role_of(team_id=team_id, user_id=user_id) == TeamRole.ADMIN:
        return filters, None
    own = set(VirtualKey.objects.filter(user__username=user_id).values_list("token", flat=True)) if user_id else set()
    if getattr(caller, "key_token", None):
        own.add(caller.key_token)
    return filters, frozenset(own)


class GlobalSpendReportApi(APIView):
    """Spend per day grouped by team, customer, key, tag, model or day; JSON (the contract's shape)
    or, with ``format=csv``, a CSV export. Both stream one day at a time."""

    permission_classes = [IsAuthenticatedCaller]
    content_negotiation_class = IgnoreFormatParameter
    group_by: str | None = None   # set: the route's fixed grouping (/key/spend/report, ...)

    def get(self, request):
        params = request.query_params.copy()
        if self.group_by:
            params["group_by"] = self.group_by
        query = validated(SpendReportQuerySerializer, params)
        filters, api_keys = report_scope(request, query)
        report = spend_report.ReportQuery(start=query["start_date"], end=query["end_date"], group_by=query["group_by"],
                                          filters=filters, api_keys=api_keys)
        name = f"spend-report-{query['group_by']}-{query['start_date']}-{query['end_date']}"
        if query["format"] == "csv":
            response = StreamingHttpResponse(_streamed(request, spend_report.stream_csv(report)),
                                             content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        else:
            response = StreamingHttpResponse(_streamed(request, spend_report.stream_json(report)),
                                             content_type="application/json")
        return response


class KeySpendReportApi(GlobalSpendReportApi):
    group_by = "api_key"


class TeamSpendReportApi(GlobalSpendReportApi):
    group_by = "team"


class GlobalSpendTagsReportApi(GlobalSpendReportApi):
    group_by = "tag"


def _streamed(request, chunks):
    """Under ASGI, an async iterator that pulls each chunk (a day's queries) in Django's sync thread;
    under WSGI the plain iterator."""
    if not isinstance(getattr(request, "_request", request), ASGIRequest):
        return chunks

    async def pull():
        step = sync_to_async(next, thread_sensitive=True)
        while (chunk := await step(chunks, None)) is not None:
            yield chunk

    return pull()


class DailyActivityApi(APIView):
    """Per-day metrics with a breakdown by model, key and team (or tag). Proxy admins and viewers."""

    permission_classes = [IsProxyAdminOrViewer]
    entity = "team"
    list_param = "team_ids"

    def get(self, request):
        query = validated(DailyActivityQuerySerializer, request.query_params)
        filters = {"model_group": query["model"]} if query.get("model") else {}
        if query.get("api_key"):
            filters["api_key"] = to_digest(query["api_key"])
        wanted = query.get(self.list_param)
        only = frozenset(v.strip() for v in wanted.split(",") if v.strip()) if wanted else None
        report = spend_report.ReportQuery(start=query["start_date"], end=query["end_date"], group_by=self.entity,
                                          filters=filters)
        return Response(spend_report.daily_activity(report, only))


class TeamDailyActivityApi(DailyActivityApi):
    entity, list_param = "team", "team_ids"


class TagDailyActivityApi(DailyActivityApi):
    entity, list_param = "tag", "tags"
