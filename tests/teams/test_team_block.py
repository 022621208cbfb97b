from asgiref.sync import async_to_sync

from teams.cache import team_lookup
from teams.models import Team
from tests.teams.helpers import TEAM_FIELDS, assert_not_admin_refused


def test_block_returns_the_team_with_blocked_true(admin_api, new_team):
    new_team(team_id="t1", team_alias="search")

    response = admin_api.post("/team/block", {"team_id": "t1"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == TEAM_FIELDS
    assert (body["team_id"], body["team_alias"], body["blocked"]) == ("t1", "search", True)
    assert Team.objects.get(team_id="t1").blocked is True


def test_block_reaches_the_proxy_team_cache_at_once(admin_api, new_team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        new_team(team_id="t1")
    assert async_to_sync(team_lookup)("t1").blocked is False

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/team/block", {"team_id": "t1"}, format="json")

    assert async_to_sync(team_lookup)("t1").blocked is True


def test_unblock_returns_the_team_with_blocked_false(admin_api, new_team):
    new_team(team_id="t1", blocked=True)

    response = admin_api.post("/team/unblock", {"team_id": "t1"}, format="json")

    assert response.status_code == 200 and response.json()["blocked"] is False
    assert Team.objects.get(team_id="t1").blocked is False


def test_unblock_reaches_the_proxy_team_cache_at_once(admin_api, new_team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        new_team(team_id="t1", blocked=True)
    assert async_to_sync(team_lookup)("t1").blocked is True

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/team/unblock", {"team_id": "t1"}, format="json")

    assert async_to_sync(team_lookup)("t1").blocked is False


def test_block_of_an_unknown_team_is_404(admin_api):
    response = admin_api.post("/team/block", {"team_id": "ghost"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Team not found, passed team_id=ghost",
                                         "type": "not_found_error", "param": "team_id", "code": "404"}}


def test_block_without_team_id_is_400(admin_api):
    response = admin_api.post("/team/block", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "team_id"


def test_block_by_a_team_admin_is_refused(api_as, new_key, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "admin", "user_id": "ann"}])

    response = api_as(new_key(user_id="ann")).post("/team/block", {"team_id": "t1"}, format="json")

    assert_not_admin_refused(response)
    assert Team.objects.get(team_id="t1").blocked is False
