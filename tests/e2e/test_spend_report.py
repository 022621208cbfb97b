"""/global/spend/report through a live gateway: requests made with the openai SDK, reported exactly."""
import csv
import io
from datetime import datetime, timezone
from decimal import Decimal

import pytest

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello"}]


def test_report_of_sdk_requests_equals_their_spend_logs(gateway, stand_in):
    team_id = gateway.admin("POST", "/team/new", json={"team_alias": "report-e2e"}).json()["team_id"]
    keys = [gateway.new_key(team_id=team_id) for _ in range(2)]
    ids = [gateway.sdk(keys[0]).chat.completions.create(model="priced-model", messages=HELLO).id for _ in range(3)]
    ids.append(gateway.sdk(keys[1]).chat.completions.create(model="unpriced-model", messages=HELLO).id)
    rows = [gateway.spend_row(request_id) for request_id in ids]
    today = datetime.now(timezone.utc).date().isoformat()
    params = {"start_date": today, "end_date": today, "team_id": team_id}

    report = gateway.admin("GET", "/global/spend/report", params={**params, "group_by": "team"})
    assert report.status_code == 200
    [day] = report.json()
    [team] = day["teams"]
    priced = sum(Decimal(repr(r["spend"])) for r in rows if r["spend"] is not None)
    assert priced > 0
    assert (team["team_id"], team["team_name"], Decimal(team["total_spend_exact"]), team["requests"],
            team["unknown_price_requests"], team["has_unknown_price"]) == (team_id, "report-e2e", priced, 4, 1, True)

    export = gateway.admin("GET", "/global/spend/report", params={**params, "group_by": "api_key", "format": "csv"})
    assert export.headers["content-type"].startswith("text/csv")
    by_key = {r["group"]: r for r in csv.DictReader(io.StringIO(export.text))}
    assert sum(Decimal(r["spend"]) for r in by_key.values()) == priced
    assert sorted(int(r["requests"]) for r in by_key.values()) == [1, 3]

    # A key holder without a user sees only its own key's spend.
    mine = gateway.admin("GET", "/global/spend/report", params={**params, "group_by": "api_key"},
                         headers={"Authorization": f"Bearer {keys[1]}"})
    assert [len(d["api_keys"]) for d in mine.json()] == [1]
    assert mine.json()[0]["api_keys"][0]["unknown_price_requests"] == 1


def test_bad_dates_are_a_contract_400(gateway):
    response = gateway.admin("GET", "/global/spend/report", params={"start_date": "2026-02-30", "end_date": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "400"
