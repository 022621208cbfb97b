import uuid

from teams.models import Team, TeamMembership, User
from tests.teams.helpers import TEAM_FIELDS, assert_not_admin_refused


def test_new_team_returns_the_team_with_every_field(admin_api):
    response = admin_api.post("/team/new", {
        "team_alias": "research", "team_id": "team-research", "models": ["gpt-4o"], "max_budget": 10,
        "tpm_limit": 1000, "rpm_limit": 10, "max_parallel_requests": 2, "blocked": False,
    }, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == TEAM_FIELDS
    assert {k: body[k] for k in TEAM_FIELDS - {"created_at", "updated_at"}} == {
        "team_id": "team-research", "team_alias": "research", "admins": [], "members": [],
        "members_with_roles": [], "metadata": {}, "models": ["gpt-4o"], "max_budget": 10.0, "spend": 0.0,
        "blocked": False, "tpm_limit": 1000, "rpm_limit": 10, "max_parallel_requests": 2,
        "budget_duration": None, "budget_reset_at": None,
    }
    assert body["created_at"] and body["updated_at"]
    assert Team.objects.get(team_id="team-research").max_budget == 10.0


def test_new_team_without_team_id_gets_a_uuid(admin_api):
    body = admin_api.post("/team/new", {"max_budget": 2}, format="json").json()

    assert str(uuid.UUID(body["team_id"])) == body["team_id"]
    assert Team.objects.filter(team_id=body["team_id"]).exists()


def test_new_team_keeps_metadata_tags_and_spend_logs_metadata(admin_api):
    metadata = {"tags": ["tag1", "tag2", "tag3"], "spend_logs_metadata": {"hello": "world"}, "owner": "ml"}

    body = admin_api.post("/team/new", {"metadata": metadata}, format="json").json()

    assert body["metadata"] == metadata
    assert Team.objects.get(team_id=body["team_id"]).metadata == metadata


def test_new_team_with_budget_duration_sets_budget_reset_at(admin_api):
    body = admin_api.post("/team/new", {"max_budget": 5, "budget_duration": "30d"}, format="json").json()

    assert body["budget_duration"] == "30d"
    assert body["budget_reset_at"] is not None


def test_new_team_creates_members_named_by_an_unknown_user_id(admin_api):
    body = admin_api.post("/team/new", {"members_with_roles": [
        {"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}]}, format="json").json()

    assert body["admins"] == ["ann"] and body["members"] == ["ben"]
    assert body["members_with_roles"] == [{"role": "admin", "user_id": "ann", "user_email": None},
                                          {"role": "user", "user_id": "ben", "user_email": None}]
    assert User.objects.get(username="ben").role == "internal_user"


def test_new_team_finds_a_member_named_by_email(admin_api, django_user_model):
    django_user_model.objects.create(username="carol", email="carol@example.com")

    body = admin_api.post("/team/new", {"members_with_roles": [
        {"role": "user", "user_email": "carol@example.com"}]}, format="json").json()

    assert body["members_with_roles"] == [{"role": "user", "user_id": "carol", "user_email": "carol@example.com"}]
    assert django_user_model.objects.count() == 1


def test_new_team_creates_a_user_for_an_unknown_email(admin_api, django_user_model):
    body = admin_api.post("/team/new", {"members_with_roles": [
        {"role": "user", "user_email": "dan@example.com"}]}, format="json").json()

    user = django_user_model.objects.get(email="dan@example.com")
    assert body["members"] == [user.username]
    assert str(uuid.UUID(user.username)) == user.username


def test_new_team_by_the_master_key_adds_no_member(admin_api):
    body = admin_api.post("/team/new", {"max_budget": 2}, format="json").json()

    assert body["members_with_roles"] == []


def test_new_team_by_a_proxy_admin_users_key_adds_the_caller_as_admin(admin_api, api_as, django_user_model):
    django_user_model.objects.create(username="root-user", role="proxy_admin")
    raw = admin_api.post("/key/generate", {"user_id": "root-user"}, format="json").json()["key"]

    body = api_as(raw).post("/team/new", {"max_budget": 2}, format="json").json()

    assert body["admins"] == ["root-user"]
    assert body["members_with_roles"] == [{"role": "admin", "user_id": "root-user", "user_email": None}]


def test_new_team_refuses_a_duplicate_team_id(admin_api, new_team):
    new_team(team_id="dup", team_alias="first")

    response = admin_api.post("/team/new", {"team_id": "dup", "team_alias": "second"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert "dup" in error["message"] and error["param"] == "team_id"
    assert Team.objects.get(team_id="dup").team_alias == "first"


def test_new_team_refuses_a_member_role_other_than_admin_or_user(admin_api):
    response = admin_api.post("/team/new", {"members_with_roles": [{"role": "owner", "user_id": "eve"}]},
                              format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "members_with_roles" and "owner" in error["message"]
    assert not Team.objects.exists() and not User.objects.filter(username="eve").exists()


def test_new_team_refuses_a_member_without_user_id_or_email(admin_api):
    response = admin_api.post("/team/new", {"members_with_roles": [{"role": "user"}]}, format="json")

    assert response.status_code == 400
    assert "user_id or user_email" in response.json()["error"]["message"]
    assert not Team.objects.exists()


def test_new_team_refuses_wrong_types_naming_the_fields(admin_api):
    response = admin_api.post("/team/new", {"models": "gpt-4o", "max_budget": "lots", "metadata": []},
                              format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "bad_request_error" and error["code"] == "400"
    assert all(name in error["message"] for name in ("models", "max_budget", "metadata"))
    assert not Team.objects.exists()


def test_new_team_refuses_tags_that_are_not_a_list_of_strings(admin_api):
    response = admin_api.post("/team/new", {"metadata": {"tags": "tag1"}}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "metadata: tags must be a list of strings."
    assert not Team.objects.exists()


def test_new_team_refuses_a_bad_budget_duration(admin_api):
    response = admin_api.post("/team/new", {"budget_duration": "monthly"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "budget_duration"


def test_new_team_refuses_malformed_json(admin_api):
    response = admin_api.generic("POST", "/team/new", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "request_body"
    assert not Team.objects.exists()


def test_new_team_without_a_key_is_401(anonymous_api):
    response = anonymous_api.post("/team/new", {}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, No api key passed in."


def test_new_team_by_a_non_admin_key_is_refused(api_as, alice_key):
    response = api_as(alice_key).post("/team/new", {"team_alias": "mine"}, format="json")

    assert_not_admin_refused(response)
    assert not Team.objects.exists()
    assert not TeamMembership.objects.exists()
