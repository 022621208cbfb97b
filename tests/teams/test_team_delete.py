from asgiref.sync import async_to_sync

from keys.cache import key_lookup
from keys.models import VirtualKey
from teams.models import Team, TeamMembership, User
from tests.teams.helpers import assert_not_admin_refused


def test_delete_removes_the_teams_and_lists_them(admin_api, new_team):
    new_team(team_id="t1")
    new_team(team_id="t2")
    new_team(team_id="t3")

    response = admin_api.post("/team/delete", {"team_ids": ["t1", "t2"]}, format="json")

    assert response.status_code == 200
    assert response.json() == {"deleted_teams": ["t1", "t2"]}
    assert list(Team.objects.values_list("team_id", flat=True)) == ["t3"]


def test_delete_removes_the_teams_keys(admin_api, new_team, new_key):
    new_team(team_id="t1")
    new_key(team_id="t1")
    kept = new_key()

    admin_api.post("/team/delete", {"team_ids": ["t1"]}, format="json")

    assert list(VirtualKey.objects.values_list("key_name", flat=True)) == [f"sk-...{kept[-4:]}"]


def test_a_deleted_teams_key_no_longer_authenticates(admin_api, api_as, new_team, new_key):
    new_team(team_id="t1")
    raw = new_key(team_id="t1")
    assert api_as(raw).get("/key/info").status_code == 200

    admin_api.post("/team/delete", {"team_ids": ["t1"]}, format="json")

    response = api_as(raw).get("/key/info")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, Invalid API key provided."


def test_delete_evicts_the_teams_keys_from_the_proxy_key_cache(admin_api, new_team, new_key,
                                                                django_capture_on_commit_callbacks):
    new_team(team_id="t1")
    raw = new_key(team_id="t1")
    assert async_to_sync(key_lookup)(raw) is not None

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/team/delete", {"team_ids": ["t1"]}, format="json")

    assert async_to_sync(key_lookup)(raw) is None


def test_delete_removes_memberships_but_keeps_the_users(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_id": "ann"}])

    admin_api.post("/team/delete", {"team_ids": ["t1"]}, format="json")

    assert not TeamMembership.objects.exists()
    assert User.objects.filter(username="ann").exists()


def test_delete_with_an_unknown_team_deletes_nothing(admin_api, new_team, new_key):
    new_team(team_id="t1")
    new_key(team_id="t1")

    response = admin_api.post("/team/delete", {"team_ids": ["t1", "ghost"]}, format="json")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and error["message"] == "Team not found, passed team_id=ghost"
    assert Team.objects.filter(team_id="t1").exists() and VirtualKey.objects.count() == 1


def test_delete_refuses_an_empty_list(admin_api):
    response = admin_api.post("/team/delete", {"team_ids": []}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "team_ids"


def test_delete_refuses_team_ids_that_are_not_a_list(admin_api, new_team):
    new_team(team_id="t1")

    response = admin_api.post("/team/delete", {"team_ids": "t1"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "team_ids"
    assert Team.objects.filter(team_id="t1").exists()


def test_delete_by_a_non_admin_key_is_refused(api_as, alice_key, new_team):
    new_team(team_id="t1")

    response = api_as(alice_key).post("/team/delete", {"team_ids": ["t1"]}, format="json")

    assert_not_admin_refused(response)
    assert Team.objects.filter(team_id="t1").exists()
