from asgiref.sync import async_to_sync

from keys.cache import key_lookup
from keys.models import VirtualKey
from teams.models import Team, TeamMembership, User
from tests.teams.helpers import assert_not_admin_refused


def _user(admin_api, user_id: str, **fields) -> str | None:
    response = admin_api.post("/user/new", {"user_id": user_id, **fields}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["key"]


def test_delete_returns_the_ids_as_passed(admin_api):
    _user(admin_api, "ann")
    _user(admin_api, "ben")
    _user(admin_api, "kept")

    response = admin_api.post("/user/delete", {"user_ids": ["ann", "ben"]}, format="json")

    assert response.status_code == 200
    assert response.json() == {"deleted_users": ["ann", "ben"]}
    assert list(User.objects.values_list("username", flat=True)) == ["kept"]


def test_delete_deletes_the_users_keys(admin_api):
    _user(admin_api, "ann")
    kept = _user(admin_api, "kept")

    admin_api.post("/user/delete", {"user_ids": ["ann"]}, format="json")

    assert VirtualKey.objects.count() == 1 and VirtualKey.objects.get().user.username == "kept"
    assert kept


def test_a_deleted_users_key_no_longer_authenticates(admin_api, api_as, django_capture_on_commit_callbacks):
    raw = _user(admin_api, "ann")
    assert async_to_sync(key_lookup)(raw) is not None

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/user/delete", {"user_ids": ["ann"]}, format="json")

    assert async_to_sync(key_lookup)(raw) is None
    assert api_as(raw).get("/key/info").status_code == 401


def test_delete_removes_memberships_but_keeps_the_teams(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "admin", "user_id": "ann"}])

    admin_api.post("/user/delete", {"user_ids": ["ann"]}, format="json")

    assert Team.objects.filter(team_id="t1").exists() and not TeamMembership.objects.exists()


def test_delete_with_an_unknown_user_deletes_nothing(admin_api):
    _user(admin_api, "ann")

    response = admin_api.post("/user/delete", {"user_ids": ["ann", "ghost", "nobody"]}, format="json")

    assert response.status_code == 404
    assert response.json()["error"] == {"message": "User not found, passed user_id=ghost, nobody",
                                         "type": "not_found_error", "param": "user_ids", "code": "404"}
    assert User.objects.filter(username="ann").exists() and VirtualKey.objects.count() == 1


def test_delete_refuses_an_empty_list(admin_api):
    response = admin_api.post("/user/delete", {"user_ids": []}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_ids"


def test_a_user_may_not_delete_itself(admin_api, api_as):
    raw = _user(admin_api, "ann")

    response = api_as(raw).post("/user/delete", {"user_ids": ["ann"]}, format="json")

    assert_not_admin_refused(response)
    assert User.objects.filter(username="ann").exists()
