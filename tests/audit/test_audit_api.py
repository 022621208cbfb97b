"""GET /audit and GET /audit/{id}: the seed's JSON shape, filters, pages, admins only."""
import uuid
from datetime import timedelta

import pytest
from auditlog.context import disable_auditlog

from gateway_project.audit.models import AuditRecord
from keys.services import key_generate
from teams.services import user_create
from tests.audit.conftest import last_record

ROW_FIELDS = {"id", "updated_at", "changed_by", "changed_by_api_key", "action", "table_name", "object_id",
              "before_value", "updated_values"}


@pytest.fixture
def trail(audit_on, admin_api, ops_api):
    """Team t1 by the master key, then customer end-1 by ops (created, then blocked), then key k by ops."""
    admin_api.post("/team/new", {"team_id": "t1", "max_budget": 2}, format="json")
    ops_api.post("/customer/new", {"user_id": "end-1"}, format="json")
    ops_api.post("/customer/block", {"user_ids": ["end-1"]}, format="json")
    ops_api.post("/key/generate", {"key_alias": "k"}, format="json")


def _audit(client, **query) -> dict:
    response = client.get("/audit", query)
    assert response.status_code == 200, response.json()
    return response.json()


def test_list_answers_rows_in_the_seeds_shape_with_page_totals(trail, admin_api):
    body = _audit(admin_api)

    assert set(body) == {"audit_logs", "total", "page", "page_size", "total_pages"}
    assert (body["total"], body["page"], body["page_size"], body["total_pages"]) == (4, 1, 10, 1)
    assert all(set(row) == ROW_FIELDS for row in body["audit_logs"])


def test_a_created_team_reads_as_the_seeds_expected_log(trail, admin_api):
    [row] = _audit(admin_api, table_name="LiteLLM_TeamTable")["audit_logs"]

    assert str(uuid.UUID(row["id"])) == row["id"]
    assert row["updated_at"].endswith("+00:00")
    assert {k: row[k] for k in ("changed_by", "action", "table_name", "object_id", "before_value")} == {
        "changed_by": "default_user_id", "action": "created", "table_name": "LiteLLM_TeamTable", "object_id": "t1",
        "before_value": None}
    values = row["updated_values"]
    assert {k: values[k] for k in ("team_id", "admins", "members", "members_with_roles", "max_budget", "models",
                                   "blocked")} == {
        "team_id": "t1", "admins": [], "members": [], "members_with_roles": [], "max_budget": 2.0, "models": [],
        "blocked": False}


def test_list_is_newest_first(trail, admin_api):
    rows = _audit(admin_api)["audit_logs"]

    assert [row["table_name"] for row in rows] == ["LiteLLM_VerificationToken", "LiteLLM_EndUserTable",
                                                   "LiteLLM_EndUserTable", "LiteLLM_TeamTable"]


def test_sort_order_asc_lists_oldest_first(trail, admin_api):
    rows = _audit(admin_api, sort_order="asc")["audit_logs"]

    assert rows[0]["table_name"] == "LiteLLM_TeamTable"


def test_filter_by_table_name(trail, admin_api):
    rows = _audit(admin_api, table_name="LiteLLM_EndUserTable")["audit_logs"]

    assert [row["action"] for row in rows] == ["blocked", "created"]


def test_filter_by_object_id(trail, admin_api):
    key_hash = last_record(table_name="LiteLLM_VerificationToken").object_id

    [row] = _audit(admin_api, object_id=key_hash)["audit_logs"]

    assert (row["table_name"], row["updated_values"]["key_alias"]) == ("LiteLLM_VerificationToken", "k")


def test_filter_by_changed_by(trail, admin_api):
    rows = _audit(admin_api, changed_by="ops")["audit_logs"]

    assert len(rows) == 3 and {row["changed_by"] for row in rows} == {"ops"}


def test_filter_by_changed_by_api_key(trail, admin_api, ops_key):
    body = _audit(admin_api, changed_by_api_key=ops_key[1])

    assert body["total"] == 3


def test_filter_by_action(trail, admin_api):
    [row] = _audit(admin_api, action="blocked")["audit_logs"]

    assert row["object_id"] == "end-1"


def test_filter_by_dates(trail, admin_api):
    team = AuditRecord.objects.get(table_name="LiteLLM_TeamTable")
    AuditRecord.objects.exclude(pk=team.pk).update(updated_at=team.updated_at + timedelta(days=3))
    day = team.updated_at.date()

    assert _audit(admin_api, start_date=day.isoformat(), end_date=day.isoformat())["total"] == 1
    assert _audit(admin_api, start_date=(day + timedelta(days=1)).isoformat())["total"] == 3
    assert _audit(admin_api, end_date=(team.updated_at + timedelta(seconds=1)).isoformat())["total"] == 1


def test_pages_split_the_rows(trail, admin_api):
    first = _audit(admin_api, page_size=3)
    second = _audit(admin_api, page_size=3, page=2)

    assert (first["total_pages"], len(first["audit_logs"]), len(second["audit_logs"])) == (2, 3, 1)
    assert second["audit_logs"][0]["table_name"] == "LiteLLM_TeamTable"


@pytest.mark.parametrize("query", [{"page_size": 0}, {"page_size": 101}, {"page": 0}, {"action": "rotated-ish"},
                                   {"start_date": "yesterday"}])
def test_bad_query_is_400(db, admin_api, query):
    response = admin_api.get("/audit", query)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "bad_request_error"


def test_get_by_id_answers_the_row(trail, admin_api):
    record = last_record()

    response = admin_api.get(f"/audit/{record.id}")

    assert response.status_code == 200
    assert response.json()["id"] == str(record.id) and response.json()["object_id"] == record.object_id


@pytest.mark.parametrize("record_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_get_by_unknown_id_is_404(db, admin_api, record_id):
    response = admin_api.get(f"/audit/{record_id}")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("role", ["proxy_admin_viewer", "internal_user"])
def test_audit_is_refused_to_non_admins(db, api_as, role):
    with disable_auditlog():
        user_create(actor=None, user_id="someone", user_role=role, auto_create_key=False)
        _, raw = key_generate(actor=None, user_id="someone")

    response = api_as(raw).get("/audit")

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Authentication Error, Only proxy admin")


def test_audit_without_a_key_is_401(anonymous_api):
    assert anonymous_api.get("/audit").status_code == 401


def test_a_proxy_admins_key_may_read_the_audit(trail, ops_api):
    assert _audit(ops_api)["total"] == 4
