"""The spend-log change list's date drill-down, at the cost of two index probes.

Django's own ``date_hierarchy`` tag lists the years, months or days that have rows with
``SELECT DISTINCT`` over the (filtered) table: a scan of millions of ledger rows on every page view.
This one reads the ledger's first and last ``start_time`` (``ORDER BY start_time LIMIT 1`` both
ways, answered by the column's index, filters ignored) and offers every year, month or day between
them; a period without rows just shows an empty list. The links and query parameters are Django's,
so ``ChangeList`` turns a chosen period into an indexed range filter.
"""
from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from django import template
from django.contrib.admin.views.main import ChangeList
from django.utils import formats, timezone
from django.utils.text import capfirst

register = template.Library()


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def _bounds(cl: ChangeList) -> tuple[datetime, datetime] | None:
    times = cl.model._default_manager.order_by(cl.date_hierarchy).values_list(cl.date_hierarchy, flat=True)
    first, last = times.first(), times.last()
    return None if first is None or last is None else (_local(first), _local(last))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@register.inclusion_tag("admin/date_hierarchy.html")
def spend_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    field = cl.date_hierarchy
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    year, month, day = (_int(cl.params.get(name)) for name in (year_field, month_field, day_field))

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    if year and month and day:
        chosen = date(year, month, day)
        return {"show": True,
                "back": {"link": link({year_field: year, month_field: month}),
                         "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT"))},
                "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}]}
    bounds = _bounds(cl)
    if bounds is None:
        return {"show": False}
    first, last = bounds
    if not year and first.year == last.year:  # as Django does: start at the level that has a choice
        year = first.year
        month = first.month if first.month == last.month else None
    if year and month:
        low = first.day if (year, month) == (first.year, first.month) else 1
        high = last.day if (year, month) == (last.year, last.month) else calendar.monthrange(year, month)[1]
        return {"show": True, "back": {"link": link({year_field: year}), "title": str(year)},
                "choices": [{"link": link({year_field: year, month_field: month, day_field: d}),
                             "title": capfirst(formats.date_format(date(year, month, d), "MONTH_DAY_FORMAT"))}
                            for d in range(low, high + 1)]}
    if year:
        low = first.month if year == first.year else 1
        high = last.month if year == last.year else 12
        return {"show": True, "back": {"link": link({}), "title": "All dates"},
                "choices": [{"link": link({year_field: year, month_field: m}),
                             "title": capfirst(formats.date_format(date(year, m, 1), "YEAR_MONTH_FORMAT"))}
                            for m in range(low, high + 1)]}
    return {"show": True, "back": None,
            "choices": [{"link": link({year_field: y}), "title": str(y)} for y in range(first.year, last.year + 1)]}
