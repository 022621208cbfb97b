"""``/global/spend/report`` and its CSV/JSON exports, read from the daily roll-ups (``SpendDaily``).

Where each day comes from: a day whose roll-up rows were all written after the day ended (UTC) is
read from ``SpendDaily``; any other day (today, or a day the job has not rolled up since it closed)
is rolled up on the fly from the spend logs with the job's own code (``services.daily_rows``), and
not saved. Either way a day's totals equal the sum of its spend-log rows.

Money is summed in ``Decimal`` (``SpendDaily.spend_exact``); requests of unknown price (spend NULL)
are counted in ``unknown_price_requests``, never as 0. Output is produced one day at a time, so a
long range streams with memory bounded by one day's groups.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import orjson
from django.db.models import Min

from spend import services
from spend.models import SpendDaily
from teams.models import Team

MAX_REPORT_DAYS = 366

# group_by -> (SpendDaily column, the JSON list's name, the name field of each entry)
GROUP_BY = {
    "team": ("team_id", "teams", "team_name"),
    "customer": ("end_user", "customers", "customer"),
    "api_key": ("api_key", "api_keys", "api_key"),
    "tag": ("tag", "tags", "tag"),
    "model": ("model_group", "models", "model"),
    "day": (None, "days", "day"),
}
# Filters by query parameter -> SpendDaily column.
FILTERS = {"api_key": "api_key", "internal_user_id": "user", "team_id": "team_id", "customer_id": "end_user"}
CSV_COLUMNS = ("day", "group_by", "group", "group_name", "requests", "failed_requests", "unknown_price_requests",
               "prompt_tokens", "completion_tokens", "total_tokens", "spend")
COUNTS = ("requests", "failed_requests", "unknown_price_requests", "prompt_tokens", "completion_tokens",
          "total_tokens")


@dataclass(frozen=True)
class ReportQuery:
    start: date
    end: date
    group_by: str
    filters: dict[str, str] = field(default_factory=dict)   # SpendDaily column -> value
    api_keys: frozenset[str] | None = None                    # only these key digests (None: any)


@dataclass
class Totals:
    spend: Decimal = Decimal(0)
    requests: int = 0
    failed_requests: int = 0
    unknown_price_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, row: SpendDaily) -> None:
        self.spend += Decimal(row.spend_exact)
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(row, name))

    def as_dict(self) -> dict:
        return {"total_spend": float(self.spend), "total_spend_exact": str(self.spend),
                "has_unknown_price": self.unknown_price_requests > 0,
                **{name: getattr(self, name) for name in COUNTS}}


def closed_days(start: date, end: date) -> set[date]:
    """The days in range whose roll-up rows were all written after the day ended."""
    rolled = (SpendDaily.objects.filter(day__gte=start, day__lte=end).values("day")
              .annotate(first=Min("updated_at")).order_by())
    return {r["day"] for r in rolled
            if r["first"] >= datetime.combine(r["day"] + timedelta(days=1), time.min, tzinfo=timezone.utc)}


def _matches(query: ReportQuery, row: SpendDaily) -> bool:
    if (row.tag != "") != (query.group_by == "tag"):
        return False
    if query.api_keys is not None and row.api_key not in query.api_keys:
        return False
    return all(getattr(row, column) == value for column, value in query.filters.items())


def day_rows(query: ReportQuery, day: date, closed: set[date]) -> Iterator[SpendDaily]:
    """``day``'s roll-up rows that the query selects."""
    if day in closed:
        rows = SpendDaily.objects.filter(day=day, **query.filters)
        rows = rows.exclude(tag="") if query.group_by == "tag" else rows.filter(tag="")
        if query.api_keys is not None:
            rows = rows.filter(api_key__in=query.api_keys)
        yield from rows.order_by().iterator(chunk_size=2000)
    else:
        yield from (row for row in services.daily_rows(day=day) if _matches(query, row))


def report_days(query: ReportQuery) -> Iterator[tuple[date, dict[str, tuple[Totals, dict]]]]:
    """Per day (ascending, days without requests left out): group value -> (totals, per (model, key) totals)."""
    closed = closed_days(query.start, query.end)
    column = GROUP_BY[query.group_by][0]
    day = query.start
    while day <= query.end:
        groups: dict[str, tuple[Totals, dict]] = {}
        for row in day_rows(query, day, closed):
            value = getattr(row, column) if column else day.isoformat()
            totals, details = groups.setdefault(value, (Totals(), {}))
            totals.add(row)
            details.setdefault((row.model_group, row.api_key), Totals()).add(row)
        if groups:
            yield day, groups
        day += timedelta(days=1)


def _team_names(groups: dict) -> dict[str, str]:
    return dict(Team.objects.filter(team_id__in=[g for g in groups if g]).values_list("team_id", "team_alias")
                .exclude(team_alias=None))


def json_day(query: ReportQuery, day: date, groups: dict) -> dict:
    _, list_name, name_field = GROUP_BY[query.group_by]
    names = _team_names(groups) if query.group_by == "team" else {}
    entries = []
    for value, (totals, details) in sorted(groups.items(), key=lambda g: (-g[1][0].spend, g[0])):
        entry = {name_field: names.get(value, value) if query.group_by == "team" else value}
        if query.group_by == "team":
            entry["team_id"] = value
        entry.update(totals.as_dict())
        entry["metadata"] = [{"model": model, "api_key": api_key, "spend": float(t.spend),
                              "spend_exact": str(t.spend), "total_tokens": t.total_tokens, "requests": t.requests,
                              "unknown_price_requests": t.unknown_price_requests}
                             for (model, api_key), t in sorted(details.items(), key=lambda d: (-d[1].spend, d[0]))]
        entries.append(entry)
    return {"group_by_day": day.isoformat(), list_name: entries}


def stream_json(query: ReportQuery) -> Iterator[bytes]:
    """The contract's JSON (a list of per-day rows), one day per chunk."""
    yield b"["
    first = True
    for day, groups in report_days(query):
        yield (b"" if first else b",") + orjson.dumps(json_day(query, day, groups))
        first = False
    yield b"]"


def report_json(query: ReportQuery) -> list[dict]:
    return [json_day(query, day, groups) for day, groups in report_days(query)]


def stream_csv(query: ReportQuery) -> Iterator[str]:
    """One CSV row per (day, group); ``spend`` is the exact decimal sum, unknown-price requests excluded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for day, groups in report_days(query):
        names = _team_names(groups) if query.group_by == "team" else {}
        for value, (totals, _) in sorted(groups.items()):
            writer.writerow([day.isoformat(), query.group_by, value, names.get(value, ""),
                             *(getattr(totals, name) for name in COUNTS), totals.spend])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def _metrics(totals: Totals) -> dict:
    return {"spend": float(totals.spend), "spend_exact": str(totals.spend), "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens, "total_tokens": totals.total_tokens,
            "api_requests": totals.requests, "successful_requests": totals.requests - totals.failed_requests,
            "failed_requests": totals.failed_requests, "unknown_price_requests": totals.unknown_price_requests}


def _merge(into: Totals, other: Totals) -> None:
    into.spend += other.spend
    for name in COUNTS:
        setattr(into, name, getattr(into, name) + getattr(other, name))


def daily_activity(query: ReportQuery, only: frozenset[str] | None = None) -> dict:
    """``/team/daily/activity`` and ``/tag/daily/activity``: per day, the metrics and their breakdown by
    model, key and entity (team or tag; ``only``: just these). ``query.group_by`` is ``team`` or ``tag``."""
    results, overall = [], Totals()
    for day, groups in report_days(query):
        day_totals, breakdown = Totals(), {"models": {}, "api_keys": {}, "entities": {}}
        for value, (totals, details) in groups.items():
            if only is not None and value not in only:
                continue
            _merge(day_totals, totals)
            breakdown["entities"][value] = totals
            for (model, api_key), detail in details.items():
                _merge(breakdown["models"].setdefault(model, Totals()), detail)
                _merge(breakdown["api_keys"].setdefault(api_key, Totals()), detail)
        if not day_totals.requests:
            continue
        _merge(overall, day_totals)
        results.append({"date": day.isoformat(), "metrics": _metrics(day_totals),
                        "breakdown": {kind: {name: {"metrics": _metrics(t)} for name, t in sorted(items.items())}
                                      for kind, items in breakdown.items()}})
    metadata = {f"total_{name}": value for name, value in _metrics(overall).items()}
    return {"results": results, "metadata": {**metadata, "page": 1, "total_pages": 1, "has_more": False}}
