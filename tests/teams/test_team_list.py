from tests.teams.helpers import TEAM_FIELDS, assert_not_admin_refused


def test_list_returns_every_team_as_a_team_dict(admin_api, new_team):
    first = new_team(team_id="t1", team_alias="one")
    second = new_team(team_id="t2", team_alias="two")

    response = admin_api.get("/team/list")

    assert response.status_code == 200
    body = response.json()
    assert body == [first, second]
    assert all(set(team) == TEAM_FIELDS for team in body)


def test_list_without_teams_is_empty(admin_api):
    assert admin_api.get("/team/list").json() == []


def test_list_by_user_id_returns_only_that_users_teams(admin_api, new_team):
    new_team(team_id="t1", members_with_roles=[{"role": "user", "user_id": "ann"}])
    new_team(team_id="t2", members_with_roles=[{"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}])
    new_team(team_id="t3", members_with_roles=[{"role": "user", "user_id": "ben"}])

    body = admin_api.get("/team/list", {"user_id": "ann"}).json()

    assert [team["team_id"] for team in body] == ["t1", "t2"]
    assert body[1]["members_with_roles"] == [{"role": "admin", "user_id": "ann", "user_email": None},
                                             {"role": "user", "user_id": "ben", "user_email": None}]


def test_list_by_an_unknown_user_id_is_empty(admin_api, new_team):
    new_team(team_id="t1")

    assert admin_api.get("/team/list", {"user_id": "ghost"}).json() == []


def test_list_by_a_non_admin_key_is_refused(api_as, alice_key):
    assert_not_admin_refused(api_as(alice_key).get("/team/list"))
