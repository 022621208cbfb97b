from keys.hashing import digest
from tests.teams.helpers import TEAM_FIELDS, assert_not_admin_refused


def test_info_returns_the_team_its_keys_and_memberships(admin_api, new_team, new_key):
    team = new_team(team_id="t1", team_alias="research", metadata={"tags": ["a"]},
                    members_with_roles=[{"role": "admin", "user_id": "ann"}])
    raw = new_key(team_id="t1", key_alias="research-key")
    new_key()  # not the team's

    response = admin_api.get("/team/info", {"team_id": "t1"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"team_id", "team_info", "keys", "team_memberships"}
    assert body["team_id"] == "t1"
    assert set(body["team_info"]) == TEAM_FIELDS
    assert body["team_info"] == team
    assert [k["token_id"] for k in body["keys"]] == [digest(raw)]
    assert body["keys"][0]["key_alias"] == "research-key" and "key" not in body["keys"][0]
    [membership] = body["team_memberships"]
    assert set(membership) == {"user_id", "team_id", "role", "max_budget_in_team", "created_at"}
    assert (membership["user_id"], membership["team_id"], membership["role"], membership["max_budget_in_team"]) \
        == ("ann", "t1", "admin", None)


def test_info_of_a_team_without_keys_or_members_has_empty_lists(admin_api, new_team):
    new_team(team_id="t1")

    body = admin_api.get("/team/info", {"team_id": "t1"}).json()

    assert body["keys"] == [] and body["team_memberships"] == []


def test_info_without_team_id_is_400(admin_api):
    response = admin_api.get("/team/info")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "team_id" and error["type"] == "bad_request_error"


def test_info_of_an_unknown_team_is_404(admin_api):
    response = admin_api.get("/team/info", {"team_id": "ghost"})

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Team not found, passed team_id=ghost",
                                         "type": "not_found_error", "param": "team_id", "code": "404"}}


def test_info_by_a_non_admin_key_is_refused(api_as, alice_key, new_team):
    new_team(team_id="t1")

    assert_not_admin_refused(api_as(alice_key).get("/team/info", {"team_id": "t1"}))
