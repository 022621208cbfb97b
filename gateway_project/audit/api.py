"""GET /audit and GET /audit/{id}: the audit trail in LiteLLM's shape, for proxy admins only (the
management API's default permission)."""
from __future__ import annotations

import math
from datetime import date, datetime, time, timezone

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.audit import selectors
from gateway_project.audit.models import AuditAction
from gateway_project.serializers import validated


class DateOrDateTimeField(serializers.Field):
    """``2024-06-01`` (a whole day) or an ISO 8601 datetime."""

    def to_internal_value(self, data):
        field = serializers.DateField() if len(str(data)) <= 10 else serializers.DateTimeField()
        try:
            return field.to_internal_value(data)
        except serializers.ValidationError:
            raise serializers.ValidationError("use YYYY-MM-DD or an ISO 8601 datetime") from None


class AuditListQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(required=False, default=1, min_value=1)
    page_size = serializers.IntegerField(required=False, default=10, min_value=1, max_value=100)
    changed_by = serializers.CharField(required=False)
    changed_by_api_key = serializers.CharField(required=False)
    action = serializers.ChoiceField(choices=AuditAction.values, required=False)
    table_name = serializers.CharField(required=False)
    object_id = serializers.CharField(required=False)
    start_date = DateOrDateTimeField(required=False)
    end_date = DateOrDateTimeField(required=False)
    sort_order = serializers.ChoiceField(choices=("asc", "desc"), required=False, default="desc")


def _start(value: date | datetime | None) -> datetime | None:
    return datetime.combine(value, time.min, tzinfo=timezone.utc) if type(value) is date else value


def _end(value: date | datetime | None) -> datetime | None:
    """An end *date* includes that whole day."""
    return datetime.combine(value, time.max, tzinfo=timezone.utc) if type(value) is date else value


class AuditListApi(APIView):
    def get(self, request):
        query = validated(AuditListQuerySerializer, request.query_params)
        filters = {name: query.get(name) for name in ("changed_by", "changed_by_api_key", "action", "table_name",
                                                       "object_id")}
        records = selectors.audit_record_list(**filters, start=_start(query.get("start_date")),
                                              end=_end(query.get("end_date")),
                                              ascending=query["sort_order"] == "asc")
        page, size = query["page"], query["page_size"]
        total = records.count()
        rows = records[(page - 1) * size: page * size]
        return Response({"audit_logs": [selectors.audit_row(record) for record in rows], "total": total,
                         "page": page, "page_size": size, "total_pages": math.ceil(total / size)})


class AuditDetailApi(APIView):
    def get(self, request, record_id: str):
        return Response(selectors.audit_row(selectors.audit_record_get(record_id=record_id)))
