from teams.models import TeamMembership, User
from tests.teams.helpers import TEAM_FIELDS, USER_FIELDS, assert_not_admin_refused


def test_member_add_returns_the_team_with_updated_users_and_memberships(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_add", {"team_id": "t1", "member": {"role": "user", "user_id": "ann"}},
                              format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == TEAM_FIELDS | {"updated_users", "updated_team_memberships"}
    assert body["members"] == ["ann"]
    assert body["members_with_roles"] == [{"role": "user", "user_id": "ann", "user_email": None}]
    [user] = body["updated_users"]
    assert set(user) == USER_FIELDS
    assert (user["user_id"], user["user_role"], user["teams"]) == ("ann", "internal_user", ["t1"])
    [membership] = body["updated_team_memberships"]
    assert (membership["user_id"], membership["team_id"], membership["role"]) == ("ann", "t1", "user")


def test_member_add_accepts_a_list_of_members(admin_api, new_team):
    new_team(team_id="t1")

    body = admin_api.post("/team/member_add", {"team_id": "t1", "member": [
        {"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}]}, format="json").json()

    assert body["admins"] == ["ann"] and body["members"] == ["ben"]
    assert [u["user_id"] for u in body["updated_users"]] == ["ann", "ben"]


def test_member_add_finds_an_existing_user_by_email(admin_api, new_team, django_user_model):
    django_user_model.objects.create(username="carol", email="carol@example.com")
    new_team(team_id="t1")

    body = admin_api.post("/team/member_add", {"team_id": "t1", "member": {
        "role": "user", "user_email": "carol@example.com"}}, format="json").json()

    assert body["members_with_roles"] == [{"role": "user", "user_id": "carol", "user_email": "carol@example.com"}]
    assert django_user_model.objects.count() == 1


def test_member_add_creates_a_user_for_an_unknown_email(admin_api, new_team):
    new_team(team_id="t1")

    body = admin_api.post("/team/member_add", {"team_id": "t1", "member": {
        "role": "user", "user_email": "dan@example.com"}}, format="json").json()

    assert body["updated_users"][0]["user_email"] == "dan@example.com"
    assert User.objects.get(email="dan@example.com").username == body["members"][0]


def test_member_add_of_an_existing_member_changes_their_role(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_id": "ann"}])

    body = admin_api.post("/team/member_add", {"team_id": "t1", "member": {"role": "admin", "user_id": "ann"}},
                          format="json").json()

    assert body["admins"] == ["ann"] and body["members"] == []
    assert TeamMembership.objects.get(team_id="t1", user__username="ann").role == "admin"


def test_member_add_stores_max_budget_in_team(admin_api, new_team):
    new_team(team_id="t1")

    body = admin_api.post("/team/member_add", {"team_id": "t1", "member": {"role": "user", "user_id": "ann"},
                                               "max_budget_in_team": 2.5}, format="json").json()

    assert body["updated_team_memberships"][0]["max_budget_in_team"] == 2.5
    assert TeamMembership.objects.get(user__username="ann").max_budget_in_team == 2.5


def test_member_add_refuses_a_role_other_than_admin_or_user(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_add", {"team_id": "t1", "member": {"role": "owner", "user_id": "ann"}},
                              format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "member" and '"owner" is not a valid choice' in error["message"]
    assert not User.objects.filter(username="ann").exists()


def test_member_add_refuses_the_whole_list_when_one_member_is_bad(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_add", {"team_id": "t1", "member": [
        {"role": "user", "user_id": "ann"}, {"role": "user"}]}, format="json")

    assert response.status_code == 400
    assert "user_id or user_email" in response.json()["error"]["message"]
    assert not TeamMembership.objects.exists()


def test_member_add_without_a_member_is_400(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_add", {"team_id": "t1"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "member"


def test_member_add_refuses_a_member_that_is_not_an_object(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_add", {"team_id": "t1", "member": "ann"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "member"


def test_member_add_to_an_unknown_team_is_404_and_creates_no_user(admin_api):
    response = admin_api.post("/team/member_add", {"team_id": "ghost", "member": {"role": "user", "user_id": "ann"}},
                              format="json")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Team not found, passed team_id=ghost"
    assert not User.objects.filter(username="ann").exists()


def test_member_add_by_a_non_admin_key_is_refused(api_as, alice_key, new_team):
    new_team(team_id="t1")

    response = api_as(alice_key).post("/team/member_add", {"team_id": "t1", "member": {
        "role": "admin", "user_id": "alice"}}, format="json")

    assert_not_admin_refused(response)
    assert not TeamMembership.objects.exists()
