"""The spend report's CSV/JSON export in the admin (``/admin/spend/report/``), linked from the spend
log changelist. The same report as ``/global/spend/report`` (``spend.spend_report``), unrestricted:
the admin site's staff with permission to view spend logs see every row."""
from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from keys.hashing import to_digest
from spend import spend_report


def _report_response(query: dict) -> StreamingHttpResponse:
    filters = {column: query[name] for name, column in spend_report.FILTERS.items() if query.get(name)}
    if filters.get("api_key"):
        filters["api_key"] = to_digest(filters["api_key"])
    report = spend_report.ReportQuery(start=query["start_date"], end=query["end_date"], group_by=query["group_by"],
                                      filters=filters)
    name = f"spend-report-{query['group_by']}-{query['start_date']}-{query['end_date']}.{query['format']}"
    if query["format"] == "csv":
        response = StreamingHttpResponse(spend_report.stream_csv(report), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(spend_report.stream_json(report), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def spend_report_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("spend.view_spendlog"):
        raise PermissionDenied
    errors: dict = {}
    if "start_date" in request.GET:
        # Here, not above: the URLconf imports this module, and DRF's serializers (with what DRF's compat
        # module pulls in) would otherwise load in every worker before any admin request.
        from spend.api.serializers import SpendReportQuerySerializer

        serializer = SpendReportQuerySerializer(data=request.GET)
        if serializer.is_valid():
            return _report_response(dict(serializer.validated_data))
        errors = {field: " ".join(str(m) for m in messages) for field, messages in serializer.errors.items()}
    today = timezone.now().date()
    context = {
        **admin.site.each_context(request),
        "title": "Export spend report",
        "errors": errors,
        "values": {"start_date": (today - timedelta(days=30)).isoformat(), "end_date": today.isoformat(),
                   "group_by": "team", "format": "csv", **request.GET.dict()},
        "group_by_choices": list(spend_report.GROUP_BY),
        "filters": list(spend_report.FILTERS),
        "max_days": spend_report.MAX_REPORT_DAYS,
    }
    return TemplateResponse(request, "admin/spend/spend_report.html", context, status=400 if errors else 200)

