from keys.models import VirtualKey
from teams.models import TeamMembership, User
from tests.teams.helpers import TEAM_FIELDS, assert_not_admin_refused


def test_member_delete_by_user_id_returns_the_team_without_them(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}])

    response = admin_api.post("/team/member_delete", {"team_id": "t1", "user_id": "ben"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == TEAM_FIELDS
    assert body["admins"] == ["ann"] and body["members"] == []
    assert body["members_with_roles"] == [{"role": "admin", "user_id": "ann", "user_email": None}]


def test_member_delete_by_user_email(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_email": "carol@example.com"}])

    body = admin_api.post("/team/member_delete", {"team_id": "t1", "user_email": "carol@example.com"},
                          format="json").json()

    assert body["members_with_roles"] == []
    assert not TeamMembership.objects.exists()


def test_member_delete_keeps_the_user_and_their_keys(admin_api, new_team, new_key):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_id": "ann"}])
    new_key(user_id="ann", team_id="t1")

    admin_api.post("/team/member_delete", {"team_id": "t1", "user_id": "ann"}, format="json")

    assert User.objects.filter(username="ann").exists()
    assert VirtualKey.objects.filter(user__username="ann").count() == 1


def test_member_delete_of_a_non_member_is_400(admin_api, new_team, django_user_model):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_id": "ann"}])
    django_user_model.objects.create(username="ben")

    response = admin_api.post("/team/member_delete", {"team_id": "t1", "user_id": "ben"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": {"message": "User ben is not a member of team t1",
                                         "type": "bad_request_error", "param": "user_id", "code": "400"}}
    assert TeamMembership.objects.count() == 1


def test_member_delete_of_an_unknown_email_is_400(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_delete", {"team_id": "t1", "user_email": "nobody@example.com"},
                              format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "user_email" and "nobody@example.com" in error["message"]


def test_member_delete_without_user_id_or_email_is_400(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/member_delete", {"team_id": "t1"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "user_id: Pass user_id or user_email."


def test_member_delete_from_an_unknown_team_is_404(admin_api):
    response = admin_api.post("/team/member_delete", {"team_id": "ghost", "user_id": "ann"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Team not found, passed team_id=ghost"


def test_member_delete_by_a_non_admin_key_is_refused(api_as, alice_key, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_id": "alice"}])

    response = api_as(alice_key).post("/team/member_delete", {"team_id": "t1", "user_id": "alice"}, format="json")

    assert_not_admin_refused(response)
    assert TeamMembership.objects.count() == 1
