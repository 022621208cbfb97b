from keys.hashing import digest
from tests.teams.helpers import TEAM_FIELDS, USER_FIELDS


def test_info_returns_the_user_their_keys_and_teams(admin_api, new_team):
    created = admin_api.post("/user/new", {"user_id": "ann", "user_email": "ann@example.com", "max_budget": 3,
                                           "models": ["gpt-4o"]}, format="json").json()
    team = new_team(team_id="t1", members_with_roles=[{"role": "admin", "user_id": "ann"}])
    new_team(team_id="t2")

    response = admin_api.get("/user/info", {"user_id": "ann"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user_id", "user_info", "keys", "teams"}
    assert body["user_id"] == "ann"
    info = body["user_info"]
    assert set(info) == USER_FIELDS
    assert {k: info[k] for k in USER_FIELDS - {"created_at"}} == {
        "user_id": "ann", "user_email": "ann@example.com", "user_role": "internal_user", "max_budget": 3.0,
        "spend": 0.0, "models": ["gpt-4o"], "metadata": {}, "budget_duration": None, "budget_reset_at": None,
        "tpm_limit": None, "rpm_limit": None, "max_parallel_requests": None, "teams": ["t1"],
    }
    assert [k["token_id"] for k in body["keys"]] == [created["token_id"]]
    assert body["teams"] == [team] and set(body["teams"][0]) == TEAM_FIELDS


def test_info_without_user_id_shows_the_calling_keys_own_user(api_as, alice_key):
    response = api_as(alice_key).get("/user/info")

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "alice" and body["user_info"]["user_id"] == "alice"
    assert [k["token_id"] for k in body["keys"]] == [digest(alice_key)]


def test_a_non_admin_key_may_name_its_own_user(api_as, alice_key):
    response = api_as(alice_key).get("/user/info", {"user_id": "alice"})

    assert response.status_code == 200
    assert response.json()["user_id"] == "alice"


def test_a_non_admin_key_may_not_see_another_user(api_as, alice_key, new_key):
    new_key(user_id="bob")

    response = api_as(alice_key).get("/user/info", {"user_id": "bob"})

    assert response.status_code == 403
    assert response.json() == {"error": {"message": "You may only view your own user.", "type": "auth_error",
                                         "param": "None", "code": "403"}}


def test_a_proxy_admin_viewer_may_see_any_user(admin_api, api_as, new_key):
    viewer = admin_api.post("/user/new", {"user_id": "val", "user_role": "proxy_admin_viewer"},
                            format="json").json()["key"]
    new_key(user_id="bob")

    response = api_as(viewer).get("/user/info", {"user_id": "bob"})

    assert response.status_code == 200 and response.json()["user_id"] == "bob"


def test_info_of_an_unknown_user_is_404(admin_api):
    response = admin_api.get("/user/info", {"user_id": "ghost"})

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "User not found, passed user_id=ghost",
                                         "type": "not_found_error", "param": "user_id", "code": "404"}}


def test_info_by_the_master_key_without_user_id_is_400(admin_api):
    response = admin_api.get("/user/info")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_id"


def test_info_by_a_key_without_a_user_and_without_user_id_is_400(api_as, new_key):
    response = api_as(new_key()).get("/user/info")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_id"


def test_info_without_a_key_is_401(anonymous_api):
    response = anonymous_api.get("/user/info", {"user_id": "ann"})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, No api key passed in."
