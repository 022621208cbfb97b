import uuid

from keys.hashing import digest
from keys.models import VirtualKey
from teams.models import TeamMembership, User
from tests.teams.helpers import USER_FIELDS, assert_not_admin_refused

KEY_INFO_FIELDS = {
    "key_name", "key_alias", "token_id", "spend", "max_budget", "budget_duration", "budget_reset_at", "soft_budget",
    "expires", "models", "aliases", "config", "user_id", "team_id", "permissions", "metadata", "tags", "guardrails",
    "enforced_params", "allowed_ips", "allowed_routes", "tpm_limit", "rpm_limit", "max_parallel_requests",
    "model_max_budget", "model_rpm_limit", "model_tpm_limit", "blocked", "created_by", "updated_by", "created_at",
    "updated_at",
}


def test_new_user_creates_the_user_and_a_key_for_them(admin_api):
    response = admin_api.post("/user/new", {"user_id": "ann", "user_email": "ann@example.com", "max_budget": 5,
                                            "models": ["gpt-4o"], "metadata": {"team": "ml"}}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == KEY_INFO_FIELDS | USER_FIELDS | {"key"}
    assert (body["user_id"], body["user_email"], body["user_role"], body["teams"]) == \
        ("ann", "ann@example.com", "internal_user", [])
    assert (body["max_budget"], body["models"], body["metadata"]) == (5.0, ["gpt-4o"], {"team": "ml"})
    assert body["key"].startswith("sk-") and body["token_id"] == digest(body["key"])
    assert body["key_name"] == f"sk-...{body['key'][-4:]}"
    user = User.objects.get(username="ann")
    assert (user.email, user.role, user.max_budget, user.models) == \
        ("ann@example.com", "internal_user", 5.0, ["gpt-4o"])
    key = VirtualKey.objects.get(token=body["token_id"])
    assert key.user == user and key.models == ["gpt-4o"] and key.max_budget is None


def test_new_users_key_authenticates_as_that_user(admin_api, api_as):
    raw = admin_api.post("/user/new", {"user_id": "ann"}, format="json").json()["key"]

    body = api_as(raw).get("/key/info").json()

    assert body["info"]["user_id"] == "ann"


def test_new_user_without_user_id_gets_a_uuid(admin_api):
    body = admin_api.post("/user/new", {}, format="json").json()

    assert str(uuid.UUID(body["user_id"])) == body["user_id"]
    assert User.objects.filter(username=body["user_id"]).exists()


def test_new_user_with_auto_create_key_false_has_no_key(admin_api):
    response = admin_api.post("/user/new", {"user_id": "ann", "auto_create_key": False}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["key"] is None and body["token_id"] is None
    assert body["user_id"] == "ann"
    assert User.objects.filter(username="ann").exists() and not VirtualKey.objects.exists()


def test_new_user_passes_key_alias_and_duration_to_the_key(admin_api):
    body = admin_api.post("/user/new", {"user_id": "ann", "key_alias": "ann-laptop", "duration": "1h"},
                          format="json").json()

    assert body["key_alias"] == "ann-laptop" and body["expires"] is not None


def test_new_user_with_a_role(admin_api):
    body = admin_api.post("/user/new", {"user_id": "viewer", "user_role": "proxy_admin_viewer"}, format="json").json()

    assert body["user_role"] == "proxy_admin_viewer"
    assert User.objects.get(username="viewer").role == "proxy_admin_viewer"


def test_new_user_with_budget_duration_sets_budget_reset_at(admin_api):
    body = admin_api.post("/user/new", {"user_id": "ann", "max_budget": 1, "budget_duration": "30d"},
                          format="json").json()

    assert body["budget_duration"] == "30d" and body["budget_reset_at"] is not None


def test_new_user_joins_the_named_teams_as_user(admin_api, new_team):
    new_team(team_id="t1")
    new_team(team_id="t2")

    body = admin_api.post("/user/new", {"user_id": "ann", "teams": ["t1", "t2"]}, format="json").json()

    assert body["teams"] == ["t1", "t2"]
    assert set(TeamMembership.objects.filter(user__username="ann").values_list("team_id", "role")) == \
        {("t1", "user"), ("t2", "user")}


def test_new_user_with_an_unknown_team_creates_nothing(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/user/new", {"user_id": "ann", "teams": ["t1", "ghost"]}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "teams" and error["message"] == "Team not found, passed team_id=ghost"
    assert not User.objects.filter(username="ann").exists()
    assert not VirtualKey.objects.exists() and not TeamMembership.objects.exists()


def test_new_user_refuses_an_existing_user_id(admin_api):
    admin_api.post("/user/new", {"user_id": "ann", "max_budget": 1}, format="json")

    response = admin_api.post("/user/new", {"user_id": "ann", "max_budget": 9}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "User with id ann already exists."
    assert User.objects.get(username="ann").max_budget == 1.0
    assert VirtualKey.objects.count() == 1


def test_new_user_refuses_an_email_another_user_has(admin_api):
    admin_api.post("/user/new", {"user_id": "ann", "user_email": "ann@example.com"}, format="json")

    response = admin_api.post("/user/new", {"user_id": "ann2", "user_email": "ANN@example.com"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_email"
    assert not User.objects.filter(username="ann2").exists()


def test_new_user_refuses_an_unknown_role(admin_api):
    response = admin_api.post("/user/new", {"user_id": "ann", "user_role": "superhero"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "user_role" and "superhero" in error["message"]
    assert not User.objects.filter(username="ann").exists()


def test_new_user_refuses_wrong_types_naming_the_fields(admin_api):
    response = admin_api.post("/user/new", {"user_id": "ann", "teams": "t1", "max_budget": "lots",
                                            "user_email": "not-an-email"}, format="json")

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert all(name in message for name in ("teams", "max_budget", "user_email"))
    assert not User.objects.filter(username="ann").exists()


def test_new_user_with_a_taken_key_alias_creates_nothing(admin_api, new_key):
    new_key(key_alias="taken")

    response = admin_api.post("/user/new", {"user_id": "ann", "key_alias": "taken"}, format="json")

    assert response.status_code == 400
    assert "taken" in response.json()["error"]["message"]
    assert not User.objects.filter(username="ann").exists()


def test_new_user_refuses_malformed_json(admin_api):
    response = admin_api.generic("POST", "/user/new", '{"user_id": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "request_body"
    assert not User.objects.exists()


def test_new_user_by_a_non_admin_key_is_refused(api_as, alice_key):
    response = api_as(alice_key).post("/user/new", {"user_id": "mallory", "user_role": "proxy_admin"}, format="json")

    assert_not_admin_refused(response)
    assert not User.objects.filter(username="mallory").exists()
