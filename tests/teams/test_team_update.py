from teams.models import Team
from tests.teams.helpers import TEAM_FIELDS, assert_not_admin_refused


def test_update_changes_the_named_fields_and_returns_the_team(admin_api, new_team):
    team = new_team(team_id="t1", team_alias="old", models=["gpt-4o"])

    response = admin_api.post("/team/update", {"team_id": "t1", "team_alias": "new", "max_budget": 3,
                                               "blocked": True}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == TEAM_FIELDS
    assert (body["team_alias"], body["max_budget"], body["blocked"]) == ("new", 3.0, True)
    assert body["created_at"] == team["created_at"]
    stored = Team.objects.get(team_id="t1")
    assert (stored.team_alias, stored.max_budget, stored.blocked) == ("new", 3.0, True)


def test_update_leaves_absent_fields_untouched(admin_api, new_team):
    new_team(team_id="t1", team_alias="keep", models=["gpt-4o"], tpm_limit=50, metadata={"tags": ["a"]})

    body = admin_api.post("/team/update", {"team_id": "t1", "rpm_limit": 5}, format="json").json()

    assert (body["team_alias"], body["models"], body["tpm_limit"], body["rpm_limit"]) == ("keep", ["gpt-4o"], 50, 5)
    assert body["metadata"] == {"tags": ["a"]}


def test_update_replaces_metadata_with_tags_and_spend_logs_metadata(admin_api, new_team):
    new_team(team_id="t1", metadata={"tags": ["old"]})
    metadata = {"tags": ["tag1"], "spend_logs_metadata": {"hello": "world"}}

    body = admin_api.post("/team/update", {"team_id": "t1", "metadata": metadata}, format="json").json()

    assert body["metadata"] == metadata
    assert Team.objects.get(team_id="t1").metadata == metadata


def test_update_keeps_the_members(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "admin", "user_id": "ann"}])

    body = admin_api.post("/team/update", {"team_id": "t1", "team_alias": "x"}, format="json").json()

    assert body["admins"] == ["ann"]


def test_update_with_a_new_budget_duration_sets_budget_reset_at(admin_api, new_team):
    new_team(team_id="t1")

    body = admin_api.post("/team/update", {"team_id": "t1", "budget_duration": "1mo"}, format="json").json()

    assert body["budget_duration"] == "1mo" and body["budget_reset_at"] is not None


def test_update_of_an_unknown_team_is_404(admin_api):
    response = admin_api.post("/team/update", {"team_id": "ghost", "max_budget": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Team not found, passed team_id=ghost",
                                         "type": "not_found_error", "param": "team_id", "code": "404"}}


def test_update_without_team_id_is_400(admin_api):
    response = admin_api.post("/team/update", {"max_budget": 1}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "team_id"


def test_update_refuses_wrong_types_and_writes_nothing(admin_api, new_team):
    new_team(team_id="t1", team_alias="keep")

    response = admin_api.post("/team/update", {"team_id": "t1", "team_alias": "changed", "tpm_limit": "many"},
                              format="json")

    assert response.status_code == 400
    assert "tpm_limit" in response.json()["error"]["message"]
    assert Team.objects.get(team_id="t1").team_alias == "keep"


def test_update_refuses_members_with_roles(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/update", {"team_id": "t1", "members_with_roles": []}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "members_with_roles" and "/team/member_add" in error["message"]


def test_update_refuses_malformed_json(admin_api):
    response = admin_api.generic("POST", "/team/update", "[1,", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "request_body"


def test_update_by_a_non_admin_key_is_refused(api_as, alice_key, new_team):
    new_team(team_id="t1", team_alias="keep")

    response = api_as(alice_key).post("/team/update", {"team_id": "t1", "team_alias": "mine"}, format="json")

    assert_not_admin_refused(response)
    assert Team.objects.get(team_id="t1").team_alias == "keep"
