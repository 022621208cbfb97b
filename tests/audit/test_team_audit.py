"""Teams in the audit trail; a member added or removed is an update of the team."""
from auditlog.context import disable_auditlog

from teams.models import Team
from tests.audit.conftest import last_record, records

TABLE = "LiteLLM_TeamTable"


def _team_of_ops(ops_api, **fields) -> dict:
    response = ops_api.post("/team/new", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_creating_a_team_records_the_seeds_expected_log(ops_api, audit_on):
    """The seed's example: a proxy admin creates a team with max_budget 2 and joins it as its admin."""
    team = _team_of_ops(ops_api, max_budget=2)

    [record] = records(table_name=TABLE)
    assert (record.action, record.object_id, record.changed_by) == ("created", team["team_id"], "ops")
    assert record.before_value is None
    values = record.updated_values
    assert {k: values[k] for k in ("team_id", "admins", "members", "max_budget", "models", "blocked")} == {
        "team_id": team["team_id"], "admins": ["ops"], "members": [], "max_budget": 2.0, "models": [],
        "blocked": False}
    assert [{k: m[k] for k in ("role", "user_id")} for m in values["members_with_roles"]] == [
        {"role": "admin", "user_id": "ops"}]


def test_creating_a_team_with_a_new_member_records_the_new_user_and_the_team(audit_on, admin_api):
    admin_api.post("/team/new", {"team_id": "t1", "members_with_roles": [{"role": "user", "user_id": "ann"}]},
                   format="json")

    assert [(r.table_name, r.action, r.object_id) for r in records()] == [
        (TABLE, "created", "t1"), ("LiteLLM_UserTable", "created", "ann"), (TABLE, "updated", "t1")]
    assert last_record().updated_values["members"] == ["ann"]


def test_updating_a_team_records_the_changed_values(audit_on, admin_api):
    admin_api.post("/team/new", {"team_id": "t1", "team_alias": "ml"}, format="json")

    admin_api.post("/team/update", {"team_id": "t1", "team_alias": "research", "max_budget": 3}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.object_id) == ("updated", "t1")
    assert record.before_value == {"team_alias": "ml", "max_budget": None}
    assert record.updated_values == {"team_alias": "research", "max_budget": 3.0}


def test_deleting_a_team_records_it_with_its_members(audit_on, ops_api):
    team = _team_of_ops(ops_api)

    ops_api.post("/team/delete", {"team_ids": [team["team_id"]]}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.object_id) == ("deleted", team["team_id"])
    assert record.before_value["admins"] == ["ops"] and record.updated_values == {}
    assert len(records(table_name=TABLE)) == 2  # its memberships went with it: no update of their own


def test_deleting_a_team_records_each_of_its_keys_deleted(audit_on, admin_api):
    admin_api.post("/team/new", {"team_id": "t1"}, format="json")
    admin_api.post("/key/generate", {"team_id": "t1"}, format="json")

    admin_api.post("/team/delete", {"team_ids": ["t1"]}, format="json")

    assert [r.action for r in records(table_name="LiteLLM_VerificationToken")] == ["created", "deleted"]


def test_blocking_a_team_records_blocked(audit_on, admin_api):
    admin_api.post("/team/new", {"team_id": "t1"}, format="json")

    admin_api.post("/team/block", {"team_id": "t1"}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.before_value, record.updated_values) == ("blocked", {"blocked": False},
                                                                           {"blocked": True})


def test_unblocking_a_team_records_unblocked(audit_on, admin_api):
    admin_api.post("/team/new", {"team_id": "t1", "blocked": True}, format="json")

    admin_api.post("/team/unblock", {"team_id": "t1"}, format="json")

    assert last_record(table_name=TABLE).action == "unblocked"


def test_adding_members_records_one_update_of_the_team(audit_on, admin_api, django_user_model):
    with disable_auditlog():
        Team.objects.create(team_id="t1")
        django_user_model.objects.create(username="ann")
        django_user_model.objects.create(username="ben")

    admin_api.post("/team/member_add", {"team_id": "t1", "member": [
        {"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}]}, format="json")

    [record] = records()
    assert (record.table_name, record.action, record.object_id) == (TABLE, "updated", "t1")
    assert {k: record.before_value[k] for k in ("admins", "members")} == {"admins": [], "members": []}
    assert {k: record.updated_values[k] for k in ("admins", "members")} == {"admins": ["ann"], "members": ["ben"]}


def test_removing_a_member_records_an_update_of_the_team(audit_on, admin_api):
    admin_api.post("/team/new", {"team_id": "t1", "members_with_roles": [{"role": "user", "user_id": "ann"}]},
                   format="json")

    admin_api.post("/team/member_delete", {"team_id": "t1", "user_id": "ann"}, format="json")

    record = last_record()
    assert (record.table_name, record.action) == (TABLE, "updated")
    assert (record.before_value["members"], record.updated_values["members"]) == (["ann"], [])
