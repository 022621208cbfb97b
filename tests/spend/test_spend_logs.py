from datetime import datetime, timedelta, timezone

from keys.services import key_generate
from spend.writer import write_batch
from tests.factories import spend_record


def test_filter_by_request_id_returns_the_row_in_the_seed_shape(admin_api):
    key, _ = key_generate(actor=None, key_alias="k")
    write_batch([spend_record(request_id="chatcmpl-abc", api_key=key.token,
                              metadata={"user_api_key": key.token, "spend_logs_metadata": {"hello": "world"}}),
                 spend_record()])

    rows = admin_api.get("/spend/logs", {"request_id": "chatcmpl-abc"}).json()

    assert len(rows) == 1
    row = rows[0]
    assert row["request_id"] == "chatcmpl-abc" and row["call_type"] == "acompletion"
    assert row["metadata"]["spend_logs_metadata"] == {"hello": "world"}
    assert {"startTime", "endTime", "spend", "total_tokens", "api_key", "status"} <= set(row)


def test_filter_by_raw_api_key_matches_its_digest(admin_api):
    key, raw = key_generate(actor=None)
    write_batch([spend_record(api_key=key.token), spend_record(api_key="other")])

    rows = admin_api.get("/spend/logs", {"api_key": raw}).json()

    assert [r["api_key"] for r in rows] == [key.token]


def test_filter_by_date_range_includes_the_whole_end_day(admin_api):
    day = datetime(2026, 3, 10, 23, 59, tzinfo=timezone.utc)
    write_batch([spend_record(start_time=day, end_time=day), spend_record(start_time=day + timedelta(days=2),
                                                                        end_time=day + timedelta(days=2))])

    rows = admin_api.get("/spend/logs", {"start_date": "2026-03-10", "end_date": "2026-03-10"}).json()

    assert len(rows) == 1


def test_a_bad_date_is_a_400_naming_the_field(admin_api):
    response = admin_api.get("/spend/logs", {"start_date": "yesterday"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "start_date"


def test_a_non_admin_key_sees_only_its_own_rows(admin_api, api_as):
    mine, raw = key_generate(actor=None, user_id="alice")
    write_batch([spend_record(api_key=mine.token), spend_record(api_key="someone-else")])

    rows = api_as(raw).get("/spend/logs").json()

    assert [r["api_key"] for r in rows] == [mine.token]


def test_without_a_key_is_401(anonymous_api):
    assert anonymous_api.get("/spend/logs").status_code == 401


def test_a_proxy_admin_viewer_sees_every_row(admin_api, api_as):
    raw = admin_api.post("/user/new", {"user_id": "viewer-v", "user_role": "proxy_admin_viewer"},
                         format="json").json()["key"]
    write_batch([spend_record(api_key="someone"), spend_record(api_key="someone-else")])

    assert len(api_as(raw).get("/spend/logs").json()) == 2
