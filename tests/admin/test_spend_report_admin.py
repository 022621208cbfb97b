"""The spend report export in the admin: linked from the spend log changelist, CSV/JSON downloads."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from django.test import Client

from spend.writer import write_batch
from tests.factories import spend_record

REPORT = "/admin/spend/report/"


def _ledger():
    at = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    write_batch([spend_record(start_time=at, end_time=at + timedelta(seconds=1), team_id="team-x", spend=s)
                 for s in (0.1, 0.2, None)])


def test_changelist_links_to_the_export(admin_site):
    response = admin_site.get("/admin/spend/spendlog/")
    assert REPORT.encode() in response.content


def test_form_then_csv_and_json_downloads(admin_site):
    _ledger()
    form = admin_site.get(REPORT)
    assert form.status_code == 200 and b'name="group_by"' in form.content

    response = admin_site.get(REPORT, {"start_date": "2026-03-01", "end_date": "2026-03-01", "group_by": "team",
                                       "format": "csv"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert (row["group"], Decimal(row["spend"]), row["requests"], row["unknown_price_requests"]) == (
        "team-x", Decimal("0.3"), "3", "1")

    response = admin_site.get(REPORT, {"start_date": "2026-03-01", "end_date": "2026-03-01", "group_by": "day",
                                       "format": "json"})
    [day] = json.loads(b"".join(response.streaming_content))
    assert day["days"][0]["total_spend_exact"] == "0.300000000000"


def test_bad_dates_show_the_form_with_errors(admin_site):
    response = admin_site.get(REPORT, {"start_date": "2026-03-05", "end_date": "2026-03-01", "group_by": "team"})
    assert response.status_code == 400 and b"must not be before start_date" in response.content


def test_viewer_may_export_anonymous_may_not(viewer_site):
    assert viewer_site.get(REPORT).status_code == 200
    assert Client().get(REPORT).status_code == 302   # to the admin sign-in
