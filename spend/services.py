"""The ledger's periodic upkeep: retention, daily roll-ups, budget resets (run by ``spend.tasks``)."""
from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, DecimalField, F, Func, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone as django_timezone

from gateway_project.durations import add_duration
from keys.models import VirtualKey
from spend import partitions
from spend.models import SpendDaily, SpendLog, SpendLogTag, SpendStatus
from teams.models import Customer, Team, User

logger = logging.getLogger("gateway.jobs")


def retention_cutoff(period: str, *, now: datetime) -> datetime:
    """The instant before which rows are older than ``period`` (a duration such as ``30d``)."""
    return now - (add_duration(now, period) - now)


# --- Retention -----------------------------------------------------------------------------------


def spend_logs_prune(*, older_than: datetime, batch_size: int | None = None) -> int:
    """Delete the spend logs (and their tag rows) that started before ``older_than``; return how many.

    On PostgreSQL (partitioned by month, ``spend.partitions``) every month that ended before
    ``older_than`` goes first, whole: its days are rolled up if they are not yet, then its partitions
    are detached and dropped. What is left (the month ``older_than`` falls in, the DEFAULT partition,
    and on other databases everything) is deleted oldest first, ``batch_size`` rows per transaction:
    each batch holds row locks on its own rows for a moment, never a table lock or one unbounded
    DELETE, so the batch writer goes on writing.
    """
    batch_size = batch_size or settings.GATEWAY_RETENTION_BATCH_SIZE
    deleted = 0
    for month in partitions.droppable_months(older_than):
        roll_up_before_drop(month)
        rows = partitions.drop_partitions(month)
        deleted += rows
        logger.info("retention: dropped the spend log partitions of %s (%d rows)", month.isoformat()[:7], rows)
    while True:
        with transaction.atomic():
            ids = list(SpendLog.objects.filter(start_time__lt=older_than).order_by("start_time")
                       .values_list("call_id", flat=True)[:batch_size])
            if not ids:
                break
            # The tag rows go in one statement first (the cascade); only("call_id"): nothing else is
            # loaded. The time bound changes nothing but lets PostgreSQL skip the newer partitions.
            deleted += (SpendLog.objects.filter(call_id__in=ids, start_time__lt=older_than).only("call_id")
                        .delete()[1].get(SpendLog._meta.label, 0))
        if len(ids) < batch_size:
            break
    if deleted:
        logger.info("retention: deleted %d spend logs older than %s", deleted, older_than.isoformat())
    return deleted


def roll_up_before_drop(month: date) -> int:
    """Roll up each day of ``month`` not rolled up since it ended (``spend_report.closed_days``), so the
    roll-ups (what reports read) hold every day whose logs are about to be dropped; return the rows written."""
    from spend.spend_report import closed_days  # it imports this module

    first = month
    last = partitions.add_months(month, 1) - timedelta(days=1)
    closed = closed_days(first, last)
    written, day = 0, first
    while day <= last:
        if day not in closed:
            written += spend_aggregate_daily(day=day)
        day += timedelta(days=1)
    return written


# --- Daily roll-ups ------------------------------------------------------------------------------

DIMENSIONS = ("api_key", "team_id", "user", "end_user", "model_group", "model")
METRICS = ("requests", "failed_requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend",
           "spend_exact", "unknown_price_requests")
SPEND_PLACES = Decimal("1e-12")


def exact_spend(value: float | None) -> Decimal:
    """A recorded spend as the Decimal it was written as (its shortest repr), not the binary float."""
    return Decimal(repr(value)) if value is not None else Decimal(0)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


class _AsWritten(Func):
    """PostgreSQL: a float column as the decimal it was written as. Its text form is the shortest that reads
    back as the same float (PostgreSQL 12 and later, with ``extra_float_digits`` above 0), which is what
    Python's ``repr`` gives too: ``exact_spend`` in the database. (Cast straight to numeric, a float keeps 15
    significant digits, and 0.1 + 0.2 would be summed as 0.3.)"""

    template = "(%(expressions)s)::text::numeric"
    output_field = DecimalField()


def _grouped(rows, prefix: str = "", *, extra: dict | None = None) -> list[dict]:
    """``rows`` grouped by the dimensions (absent ones as ""), with the metrics summed. The exact spend is
    summed by PostgreSQL in ``numeric``, one group per row returned; elsewhere (SQLite has no decimal type)
    the priced rows are read and summed here, one ``Decimal`` at a time."""
    dims = {f"d_{name}": Coalesce(F(f"{prefix}{name}"), Value("")) for name in DIMENSIONS}
    sums = {
        "m_requests": Count("pk"),
        "m_failed_requests": Count("pk", filter=Q(**{f"{prefix}status": SpendStatus.FAILURE})),
        **{f"m_{name}": Coalesce(Sum(f"{prefix}{name}"), Value(0))
           for name in ("prompt_tokens", "completion_tokens", "total_tokens")},
        "m_spend": Coalesce(Sum(f"{prefix}spend"), Value(0.0)),
        "m_unknown_price_requests": Count("pk", filter=Q(**{f"{prefix}spend__isnull": True})),
    }
    database = connections[rows.db]
    on_postgresql = database.vendor == "postgresql"
    if on_postgresql:
        sums["m_spend_exact"] = Coalesce(Sum(_AsWritten(F(f"{prefix}spend"))), Value(Decimal(0)),
                                         output_field=DecimalField())
    grouped = rows.values(**dims, **(extra or {})).annotate(**sums).order_by()
    if on_postgresql:
        with transaction.atomic(using=rows.db):
            with database.cursor() as cursor:   # the shortest text form, whatever the server's default
                cursor.execute("SET LOCAL extra_float_digits = 1")
            groups = list(grouped)
        for group in groups:
            group["m_spend_exact"] = group["m_spend_exact"].quantize(SPEND_PLACES)
        return groups
    groups = list(grouped)
    # The database sums floats; the exact column is summed here, in Decimal, one priced row at a time.
    exact: dict[tuple, Decimal] = {}
    names = [f"{prefix}{name}" for name in DIMENSIONS] + [expr.name for expr in (extra or {}).values()]
    priced = rows.filter(**{f"{prefix}spend__isnull": False}).order_by()
    for *dims_, spend in priced.values_list(*names, f"{prefix}spend").iterator(chunk_size=5000):
        grain = tuple(d or "" for d in dims_)
        exact[grain] = exact.get(grain, Decimal(0)) + exact_spend(spend)
    for group in groups:
        grain = (*(group[f"d_{name}"] for name in DIMENSIONS), *(group[k] for k in (extra or {})))
        group["m_spend_exact"] = exact.get(grain, Decimal(0)).quantize(SPEND_PLACES)
    return groups


def _daily_row(day: date, group: dict, tag: str, now: datetime) -> SpendDaily:
    dims = {name: group[f"d_{name}"] for name in DIMENSIONS}
    grain = hashlib.sha256(orjson.dumps([*dims.values(), tag])).hexdigest()
    return SpendDaily(day=day, grain=grain, tag=tag, updated_at=now, **dims,
                      **{name: group[f"m_{name}"] for name in METRICS})


def daily_rows(*, day: date, now: datetime | None = None) -> list[SpendDaily]:
    """The roll-up rows of ``day`` (UTC) computed from the logs, unsaved: what the job writes and what
    reports read for a day not rolled up since it ended."""
    start, end = _day_bounds(day)
    now = now or django_timezone.now()
    logs = SpendLog.objects.filter(start_time__gte=start, start_time__lt=end)
    rows = [_daily_row(day, group, "", now) for group in _grouped(logs)]
    # The request's own start_time (always the tag row's) bounds the join too: on PostgreSQL that
    # keeps the join to the day's partition instead of probing every month's.
    tags = (SpendLogTag.objects.filter(start_time__gte=start, start_time__lt=end).exclude(tag="")
            .filter(spend_log__start_time__gte=start, spend_log__start_time__lt=end))
    rows += [_daily_row(day, group, group["d_tag"], now)
             for group in _grouped(tags, "spend_log__", extra={"d_tag": F("tag")})]
    return rows


def spend_aggregate_daily(*, day: date) -> int:
    """Roll the spend logs of ``day`` (UTC) up into ``SpendDaily`` rows; return how many were written.

    An upsert: run it again (later the same day, or after late rows arrived) and the day's rows are
    recomputed from the logs, never added twice. Groups whose logs were since deleted keep their row.
    """
    rows = daily_rows(day=day)
    SpendDaily.objects.bulk_create(rows, update_conflicts=True, unique_fields=["day", "grain"],
                                   update_fields=[*METRICS, "updated_at"])
    return len(rows)


# --- Budget resets -------------------------------------------------------------------------------

BUDGETED = (VirtualKey, Team, User, Customer)


def budgets_reset(*, now: datetime) -> int:
    """Start a new budget period for every key, team, user and customer whose ``budget_reset_at`` has
    passed: spend back to 0, next reset ``now + budget_duration``. Returns how many were reset.

    Row by row through ``save()``: that bumps the budget epoch (admission counts the new period from
    zero) and its post_save signal invalidates the proxy's cached snapshots on commit.
    """
    count = 0
    for model in BUDGETED:
        due = list(model.objects.filter(budget_reset_at__lte=now).values_list("pk", flat=True))
        count += sum(_reset_one(model, pk, now) for pk in due)
    if count:
        logger.info("budgets: reset %d budget(s) whose period ended", count)
    return count


def _reset_one(model, pk, now: datetime) -> int:
    with transaction.atomic():
        # Locked and re-read: another run (or an admin's edit) may have reset it meanwhile.
        row = model.objects.select_for_update().filter(pk=pk, budget_reset_at__lte=now).first()
        if row is None:
            return 0
        row.spend = 0.0
        row.budget_reset_at = add_duration(now, row.budget_duration) if row.budget_duration else None
        row.save(update_fields=["spend", "budget_reset_at"])
    return 1
