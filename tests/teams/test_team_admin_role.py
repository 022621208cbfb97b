"""What a team admin (an internal user with role ``admin`` in a team) may do to its team."""
import pytest

from teams.models import Team, TeamMembership, User, UserRole
from tests.teams.helpers import assert_not_admin_refused


@pytest.fixture
def ann_key(new_key, new_team) -> str:
    """The key of ``ann``, admin of team t1, where ``ben`` is a member; t2 is someone else's team."""
    new_team(team_id="t1", team_alias="search", max_budget=10,
             members_with_roles=[{"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}])
    new_team(team_id="t2")
    return new_key(user_id="ann")


def test_a_team_admin_renames_its_team(api_as, ann_key):
    response = api_as(ann_key).post("/team/update", {"team_id": "t1", "team_alias": "find",
                                                      "metadata": {"tags": ["x"]}}, format="json")

    assert response.status_code == 200 and response.json()["team_alias"] == "find"


def test_a_team_admin_may_not_change_its_teams_budget(api_as, ann_key):
    response = api_as(ann_key).post("/team/update", {"team_id": "t1", "max_budget": 1000}, format="json")

    assert_not_admin_refused(response)
    assert response.json()["error"]["message"].endswith("Only a proxy admin may set: max_budget")
    assert Team.objects.get(team_id="t1").max_budget == 10.0


def test_a_team_admin_may_not_update_another_team(api_as, ann_key):
    assert_not_admin_refused(api_as(ann_key).post("/team/update", {"team_id": "t2", "team_alias": "x"}, format="json"))


def test_a_team_admin_adds_a_member(api_as, ann_key):
    response = api_as(ann_key).post("/team/member_add", {"team_id": "t1", "member": {"role": "user", "user_id": "cy"}},
                                    format="json")

    assert response.status_code == 200 and "cy" in response.json()["members"]


def test_a_team_admin_removes_a_member(api_as, ann_key):
    response = api_as(ann_key).post("/team/member_delete", {"team_id": "t1", "user_id": "ben"}, format="json")

    assert response.status_code == 200
    assert not TeamMembership.objects.filter(team_id="t1", user__username="ben").exists()


def test_a_team_admin_may_not_add_members_to_another_team(api_as, ann_key):
    response = api_as(ann_key).post("/team/member_add", {"team_id": "t2", "member": {"role": "admin", "user_id": "ann"}},
                                    format="json")

    assert_not_admin_refused(response)
    assert not TeamMembership.objects.filter(team_id="t2").exists()


def test_a_viewer_that_is_team_admin_may_not_update_the_team(api_as, ann_key):
    ann = User.objects.get(username="ann")
    ann.role = UserRole.INTERNAL_USER_VIEWER
    ann.save()

    assert_not_admin_refused(api_as(ann_key).post("/team/update", {"team_id": "t1", "team_alias": "x"}, format="json"))


def test_a_member_reads_its_team(api_as, ann_key, new_key):
    response = api_as(new_key(user_id="ben")).get("/team/info", {"team_id": "t1"})

    assert response.status_code == 200 and response.json()["team_id"] == "t1"


def test_a_member_may_not_read_another_team(api_as, ann_key, new_key):
    assert_not_admin_refused(api_as(new_key(user_id="ben")).get("/team/info", {"team_id": "t2"}))


def test_an_internal_user_lists_its_own_teams(api_as, ann_key):
    response = api_as(ann_key).get("/team/list", {"user_id": "ann"})

    assert response.status_code == 200 and [t["team_id"] for t in response.json()] == ["t1"]


def test_an_internal_user_may_not_list_another_users_teams(api_as, ann_key):
    response = api_as(ann_key).get("/team/list", {"user_id": "ben"})

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You may only list your own teams."
