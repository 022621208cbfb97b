"""/global/spend/report: a known workload, rolled up by the job, reported and exported exactly."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from keys.hashing import to_digest
from spend import services
from spend.models import SpendDaily, SpendLog
from spend.writer import write_batch
from tests.factories import spend_record

DAYS = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
KEYS = ["sk-report-a", "sk-report-b", "sk-report-c"]
TEAMS = ["team-red", "team-blue", None]
CUSTOMERS = ["cust-1", None, "cust-2"]
MODELS = ["gpt-4o", "claude-3"]
# Prices chosen so float summation drifts: 0.1 + 0.2 style values, many small rows.
PRICES = [0.1, 0.2, 0.3, 0.0000123, 1.0000001, None]


def workload() -> list:
    records = []
    for d, day in enumerate(DAYS):
        for i in range(60):
            at = datetime(day.year, day.month, day.day, 1 + i % 20, i % 60, tzinfo=timezone.utc)
            records.append(spend_record(
                start_time=at, end_time=at + timedelta(seconds=1),
                api_key=to_digest(KEYS[(i + d) % 3]), team_id=TEAMS[i % 3], end_user=CUSTOMERS[(i + 1) % 3],
                user="alice" if i % 3 == 0 else "bob",
                model=MODELS[i % 2], model_group=MODELS[i % 2], spend=PRICES[i % len(PRICES)],
                request_tags=[["prod"], ["prod", "batch"], []][i % 3],
                status="failure" if i % 7 == 0 else "success",
                prompt_tokens=i, completion_tokens=2 * i))
    return records


def expected(group_of) -> dict[tuple[str, str], tuple[Decimal, int, int]]:
    """(day, group) -> (exact spend, requests, unknown-price requests) from the raw rows."""
    out: dict = defaultdict(lambda: [Decimal(0), 0, 0])
    for row in SpendLog.objects.all():
        for group in group_of(row):
            entry = out[(row.start_time.date().isoformat(), group)]
            entry[1] += 1
            if row.spend is None:
                entry[2] += 1
            else:
                entry[0] += Decimal(repr(row.spend))
    return {k: tuple(v) for k, v in out.items()}


GROUPS = {
    "team": lambda r: [r.team_id or ""],
    "customer": lambda r: [r.end_user or ""],
    "api_key": lambda r: [r.api_key],
    "model": lambda r: [r.model_group],
    "tag": lambda r: list(r.request_tags),
    "day": lambda r: [r.start_time.date().isoformat()],
}
NAME_FIELD = {"team": ("teams", "team_id"), "customer": ("customers", "customer"), "api_key": ("api_keys", "api_key"),
              "model": ("models", "model"), "tag": ("tags", "tag"), "day": ("days", "day")}


@pytest.fixture
def ledger(db):
    write_batch(workload())
    for day in DAYS:
        services.spend_aggregate_daily(day=day)
    # Rolled up after the day ended: mark as such (the job ran at 00:15 the next day).
    for day in DAYS:
        SpendDaily.objects.filter(day=day).update(
            updated_at=datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1, minutes=15))


def get(api, **params):
    response = api.get("/global/spend/report", {"start_date": "2026-03-01", "end_date": "2026-03-03", **params})
    return response, b"".join(response.streaming_content) if response.status_code == 200 else response.content


@pytest.mark.parametrize("group_by", list(GROUPS))
def test_report_and_csv_equal_the_raw_rows_exactly(admin_api, ledger, group_by):
    want = expected(GROUPS[group_by])
    response, body = get(admin_api, group_by=group_by)
    assert response.status_code == 200
    list_name, name_field = NAME_FIELD[group_by]
    got = {}
    for day_row in json.loads(body):
        for entry in day_row[list_name]:
            got[(day_row["group_by_day"], entry[name_field])] = (
                Decimal(entry["total_spend_exact"]), entry["requests"], entry["unknown_price_requests"])
            assert entry["has_unknown_price"] is (entry["unknown_price_requests"] > 0)
            assert sum(Decimal(m["spend_exact"]) for m in entry["metadata"]) == Decimal(entry["total_spend_exact"])
    assert got == want

    response, body = get(admin_api, group_by=group_by, format="csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert {(r["day"], r["group"]): (Decimal(r["spend"]), int(r["requests"]), int(r["unknown_price_requests"]))
            for r in rows} == want


def test_totals_equal_the_sum_of_the_logs_to_the_cent(admin_api, ledger):
    _, body = get(admin_api, group_by="day", format="csv")
    total = sum(Decimal(r["spend"]) for r in csv.DictReader(io.StringIO(body.decode())))
    raw = sum(Decimal(repr(s)) for s in SpendLog.objects.exclude(spend=None).values_list("spend", flat=True))
    assert total == raw
    unknown = sum(int(r["unknown_price_requests"]) for r in csv.DictReader(io.StringIO(body.decode())))
    assert unknown == SpendLog.objects.filter(spend=None).count() > 0


def test_the_roll_up_sums_each_spend_as_written_whatever_the_servers_float_digits(db):
    """On PostgreSQL the exact spend is summed by the database, each float read in its shortest text form:
    a session set to print floats with fewer digits does not change the sum."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the roll-up sums in the database on PostgreSQL only")
    # Prices whose shortest form has 17 significant digits (a float cast to a 15-digit decimal loses two).
    write_batch([dataclasses.replace(r, spend=(10000.1 + 0.2, 12345.678901234567, None)[i % 3])
                 for i, r in enumerate(workload())])
    want = sum(Decimal(repr(log.spend)) for log in SpendLog.objects.all()
               if log.spend is not None and log.start_time.date() == DAYS[0])
    with connection.cursor() as cursor:
        cursor.execute("SET extra_float_digits = -10")   # floats printed with 5 significant digits
    try:
        rows = services.daily_rows(day=DAYS[0])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET extra_float_digits")

    assert sum(row.spend_exact for row in rows if not row.tag) == want


def test_on_postgresql_the_roll_up_reads_groups_not_rows(db):
    """Every query of the roll-up is an aggregate: no log row comes back to Python (a day of logs at 1,000
    calls/s is 86 million of them; without Redis the job runs in the gateway's own process)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no decimal type: the exact spend is summed row by row there")
    write_batch(workload())
    with CaptureQueriesContext(connection) as queries:
        rows = services.daily_rows(day=DAYS[0])

    reads = [query["sql"] for query in queries   # (a server-side cursor's read starts with DECLARE)
             if not query["sql"].lstrip().upper().startswith(("SET ", "SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert rows and len(reads) == 2 and all("GROUP BY" in sql for sql in reads)


def test_a_day_not_rolled_up_since_it_ended_is_read_from_the_logs(admin_api, ledger):
    # A late row lands on 2026-03-02 after its roll-up: the day's roll-up is now stale.
    at = datetime(2026, 3, 2, 23, 0, tzinfo=timezone.utc)
    write_batch([spend_record(start_time=at, end_time=at, api_key=to_digest("sk-late"), spend=0.07)])
    SpendDaily.objects.filter(day=date(2026, 3, 2)).update(updated_at=at)  # rolled up before the day ended
    want = expected(GROUPS["api_key"])
    _, body = get(admin_api, group_by="api_key", format="csv")
    got = {(r["day"], r["group"]): (Decimal(r["spend"]), int(r["requests"]), int(r["unknown_price_requests"]))
           for r in csv.DictReader(io.StringIO(body.decode()))}
    assert got == want and ("2026-03-02", to_digest("sk-late")) in got


def test_filters_narrow_the_report(admin_api, ledger):
    _, body = get(admin_api, group_by="team", team_id="team-blue", customer_id="cust-2")
    teams = {e["team_id"] for d in json.loads(body) for e in d["teams"]}
    assert teams == {"team-blue"}
    _, body = get(admin_api, group_by="api_key", api_key=KEYS[0], internal_user_id="alice")
    want = expected(lambda r: [r.api_key] if r.api_key == to_digest(KEYS[0]) and r.user == "alice" else [])
    got = {(d["group_by_day"], e["api_key"]): (Decimal(e["total_spend_exact"]), e["requests"],
                                               e["unknown_price_requests"])
           for d in json.loads(body) for e in d["api_keys"]}
    assert got == want


@pytest.mark.parametrize("params, bad", [
    ({"end_date": "2026-03-03"}, "start_date"),
    ({"start_date": "2026-03-01"}, "end_date"),
    ({"start_date": "03/01/2026", "end_date": "2026-03-03"}, "start_date"),
    ({"start_date": "2026-03-05", "end_date": "2026-03-03"}, "end_date"),
    ({"start_date": "2020-01-01", "end_date": "2026-03-03"}, "end_date"),
    ({"start_date": "2026-03-01", "end_date": "2026-03-03", "group_by": "planet"}, "group_by"),
    ({"start_date": "2026-03-01", "end_date": "2026-03-03", "format": "xml"}, "format"),
])
def test_bad_input_is_a_contract_400(admin_api, params, bad):
    response = admin_api.get("/global/spend/report", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "400" and bad in error["message"]


def test_roles(admin_api, api_as, ledger):
    admin_api.post("/user/new", {"user_id": "carol", "user_role": "internal_user"}, format="json")
    admin_api.post("/user/new", {"user_id": "vic", "user_role": "proxy_admin_viewer"}, format="json")
    admin_api.post("/team/new", {"team_id": "team-red", "members_with_roles": [{"user_id": "carol", "role": "admin"}]},
                   format="json")
    carol = admin_api.post("/key/generate", {"user_id": "carol"}, format="json").json()["key"]
    vic = admin_api.post("/key/generate", {"user_id": "vic"}, format="json").json()["key"]
    at = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    write_batch([spend_record(start_time=at, end_time=at, api_key=to_digest(carol), spend=0.25)])
    services.spend_aggregate_daily(day=date(2026, 3, 1))

    def keys(raw, **params):
        response, body = get(api_as(raw), group_by="api_key", **params)
        assert response.status_code == 200, body
        return {e["api_key"] for d in json.loads(body) for e in d["api_keys"]}

    everything = {to_digest(k) for k in KEYS} | {to_digest(carol)}
    assert keys(vic) == everything                                     # viewer: all
    assert keys(carol) == {to_digest(carol)}                           # internal user: own keys only
    assert keys(carol, api_key=KEYS[0]) == set()                       # not someone else's key
    team_red = {r.api_key for r in SpendLog.objects.filter(team_id="team-red")}
    assert keys(carol, team_id="team-red") == team_red                 # team admin: the team
    assert keys(carol, team_id="team-blue") == set()                   # not an admin there: own keys in it
    plain = admin_api.post("/key/generate", {}, format="json").json()["key"]
    assert keys(plain) == set()


@pytest.mark.parametrize("path, list_name", [("/key/spend/report", "api_keys"), ("/team/spend/report", "teams"),
                                             ("/global/spend/tags", "tags")])
def test_fixed_grouping_routes(admin_api, ledger, path, list_name):
    response = admin_api.get(path, {"start_date": "2026-03-01", "end_date": "2026-03-03", "group_by": "model"})
    days = json.loads(b"".join(response.streaming_content))
    assert len(days) == 3 and all(day[list_name] for day in days)


@pytest.mark.parametrize("path, entity, param, group_of", [
    ("/team/daily/activity", "team-red", "team_ids", GROUPS["team"]),
    ("/tag/daily/activity", "batch", "tags", GROUPS["tag"]),
])
def test_daily_activity(admin_api, api_as, ledger, path, entity, param, group_of):
    body = admin_api.get(path, {"start_date": "2026-03-01", "end_date": "2026-03-03", param: entity}).json()
    want = {day: v for (day, group), v in expected(group_of).items() if group == entity}
    got = {r["date"]: (Decimal(r["metrics"]["spend_exact"]), r["metrics"]["api_requests"],
                       r["metrics"]["unknown_price_requests"]) for r in body["results"]}
    assert got == want
    for r in body["results"]:
        assert set(r["breakdown"]["entities"]) == {entity}
        assert sum(Decimal(m["metrics"]["spend_exact"]) for m in r["breakdown"]["models"].values()) == \
            Decimal(r["metrics"]["spend_exact"])
    assert Decimal(body["metadata"]["total_spend_exact"]) == sum(v[0] for v in want.values())
    plain = admin_api.post("/key/generate", {}, format="json").json()["key"]
    assert api_as(plain).get(path, {"start_date": "2026-03-01", "end_date": "2026-03-03"}).status_code == 401
