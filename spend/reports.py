"""Selectors for the spend endpoints: filtered reads of the ledger in the contract's shapes."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from spend.models import SpendLog, SpendLogTag


def day_bounds(start: date | datetime | None, end: date | datetime | None) -> tuple[datetime | None, datetime | None]:
    """A date range as datetimes; an end *date* includes that whole day."""
    def as_start(value):
        return datetime.combine(value, time.min, tzinfo=timezone.utc) if type(value) is date else value

    def as_end(value):
        return datetime.combine(value + timedelta(days=1), time.min, tzinfo=timezone.utc) if type(value) is date else value

    return (as_start(start) if start else None), (as_end(end) if end else None)


def spend_logs(*, request_id: str | None = None, api_key: str | None = None, user_id: str | None = None,
               start: datetime | None = None, end: datetime | None = None, limit: int = 1000) -> list[SpendLog]:
    rows: QuerySet[SpendLog] = SpendLog.objects.order_by("-start_time")
    if request_id:
        rows = rows.filter(Q(request_id=request_id) | Q(call_id=request_id))
    if api_key:
        rows = rows.filter(api_key=api_key)
    if user_id:
        rows = rows.filter(user=user_id)
    if start:
        rows = rows.filter(start_time__gte=start)
    if end:
        rows = rows.filter(start_time__lt=end)
    return list(rows[:limit])


def spend_log_dict(row: SpendLog) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "litellm_call_id": row.call_id,
        "call_type": row.call_type,
        "api_key": row.api_key,
        "spend": row.spend,
        "total_tokens": row.total_tokens,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "startTime": row.start_time,
        "endTime": row.end_time,
        "completionStartTime": row.completion_start_time,
        "request_duration_ms": row.request_duration_ms,
        "model": row.model,
        "model_id": row.model_id,
        "model_group": row.model_group,
        "custom_llm_provider": row.custom_llm_provider,
        "api_base": row.api_base,
        "user": row.user,
        "end_user": row.end_user,
        "team_id": row.team_id,
        "metadata": row.metadata,
        "request_tags": row.request_tags,
        "requester_ip_address": row.requester_ip_address,
        "status": row.status,
        "cache_hit": "False",
    }


def spend_by_tag(*, start: datetime | None = None, end: datetime | None = None) -> list[dict[str, Any]]:
    rows = SpendLogTag.objects.all()
    if start:
        rows = rows.filter(start_time__gte=start)
    if end:
        rows = rows.filter(start_time__lt=end)
    grouped = rows.values("tag").annotate(log_count=Count("id"), total_spend=Sum("spend")).order_by("-total_spend", "tag")
    return [{"individual_request_tag": g["tag"], "log_count": g["log_count"], "total_spend": g["total_spend"] or 0.0}
            for g in grouped]
